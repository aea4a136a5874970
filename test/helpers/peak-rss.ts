// Preloaded with `node --import` into a child process: at exit, writes the process's peak resident set size in
// bytes (getrusage's ru_maxrss) to the file named by LORAFORGE_PEAK_RSS_FILE, so a test can bound what a command
// allocated at its worst moment without changing the command's own output.
import { writeFileSync } from 'node:fs';

const target = process.env['LORAFORGE_PEAK_RSS_FILE'];
if (target) process.on('exit', () => writeFileSync(target, String(process.resourceUsage().maxRSS * 1024)));
