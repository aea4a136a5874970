/**
 * Child process for the kill -9 test: runs `loraforge <argv>` in this process and kills itself with SIGKILL while
 * the final adapter_model.safetensors is being written into <output> (its temporary file complete, not renamed).
 * Arguments: the output folder, then the command line.
 */
import { open, readdir } from 'node:fs/promises';
import '../../src/index.js';
import { runCli } from '../../src/cli/run-cli.js';

const [output, ...argv] = process.argv.slice(2);
// FileHandle's class is not exported; its prototype is reached through an instance.
const handle = await open(process.execPath, 'r');
const prototype = Object.getPrototypeOf(handle) as { sync(this: unknown): Promise<void> };
await handle.close();
const sync = prototype.sync;
prototype.sync = async function (this: unknown) {
  if ((await readdir(output!)).some((n) => /^\.adapter_model\.safetensors\.\d+\.[0-9a-f]{12}\.tmp$/.test(n))) process.kill(process.pid, 'SIGKILL');
  return sync.call(this);
};
await runCli(argv);
