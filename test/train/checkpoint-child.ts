/**
 * Child process for kill-checkpoint.test: trains with a checkpoint every step and kills itself with SIGKILL in the
 * middle of writing the second one (temporary folder complete, not yet renamed). Argument: the output folder.
 */
import { peftDropoutControl } from '../../src/train/peft-dropout.js';
import { Trainer } from '../../src/train/trainer.js';
import { freshPeft, reversalExamples, testArgs } from './helpers.js';

const outputDir = process.argv[2]!;
const peft = await freshPeft();
let saves = 0;
await new Trainer({
  model: peft,
  args: testArgs(outputDir, { saveSteps: 1 }),
  train: await reversalExamples(10),
  padId: 0,
  dropout: peftDropoutControl(peft),
  beforeCheckpointRename: () => {
    saves += 1;
    if (saves === 2) process.kill(process.pid, 'SIGKILL');
  },
}).train();
