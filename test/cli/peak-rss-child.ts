/**
 * Child process for memory tests: runs one `loraforge <argv>` in this process (as the CLI would) and prints its
 * outcome with the peak resident memory of the process, as JSON on stdout.
 */
import { runCaptured } from '../../scripts/make-malformed-data.js';

const r = await runCaptured(process.argv.slice(2));
process.stdout.write(`${JSON.stringify({ code: r.code, stderr: r.stderr, peakMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
