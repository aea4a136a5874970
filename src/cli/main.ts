#!/usr/bin/env node
import '../index.js';
import { runCli } from './run-cli.js';

/** The status of a process killed by SIGPIPE (128 + 13), what `yes | head -1` reports for `yes`. */
const BROKEN_PIPE_EXIT = 141;

// The reader of stdout or stderr went away (`loraforge train | head -2`): stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(BROKEN_PIPE_EXIT);
  });
}

process.exitCode = await runCli(process.argv.slice(2));
