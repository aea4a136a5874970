import cliProgress from 'cli-progress';
import type { StepInfo, TrainerCallbacks } from './trainer.js';
import type { LogEntry, TrainerState } from './trainer-state.js';

export interface ProgressOptions {
  /** Where to draw; a live bar when it is a TTY, one plain line per logged step otherwise. */
  stream?: NodeJS.WriteStream;
  /** Print a plain line every this many steps when there is no TTY. */
  every?: number;
}

/**
 * Trainer callbacks that show progress: step, loss, learning rate, tokens/s (over the steps of this process)
 * and ETA. Evaluation results and checkpoint saves are printed as lines of their own.
 */
export function progressCallbacks(options: ProgressOptions = {}): TrainerCallbacks & { stop(): void } {
  const stream = options.stream ?? process.stdout;
  const live = stream.isTTY === true;
  const every = Math.max(1, options.every ?? 1);
  let bar: cliProgress.SingleBar | null = null;
  let tokens = 0;
  let seconds = 0;
  let startStep = 0;
  let shown = { step: 0, payload: { loss: '-', lr: '-', tps: 0, etaText: '-' } };
  // A line printed while the bar is live goes above it: stop the bar, print, draw it again as it was.
  const say = (line: string) => {
    if (bar) bar.stop();
    stream.write(`${line}\n`);
    if (bar) bar.start(bar.getTotal(), shown.step, shown.payload);
  };
  const fields = (info: StepInfo) => {
    const rate = tokens / Math.max(seconds, 1e-9);
    const eta = ((info.maxSteps - info.step) * seconds) / Math.max(1, info.step - startStep);
    // The logging window's mean, as metrics.jsonl and the report give it, not one step's loss.
    return { loss: (info.windowLoss ?? info.loss).toFixed(4), lr: info.lr.toExponential(2), tps: Math.round(rate), etaText: formatSeconds(eta) };
  };
  return {
    onTrainBegin(state: TrainerState) {
      startStep = state.globalStep;
      if (!live) return;
      bar = new cliProgress.SingleBar(
        { format: 'step {value}/{total} [{bar}] loss {loss} | lr {lr} | {tps} tok/s | ETA {etaText}', stream, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      shown = { ...shown, step: state.globalStep };
      bar.start(state.maxSteps, shown.step, shown.payload);
    },
    onStep(info: StepInfo) {
      tokens += info.tokens;
      seconds += info.seconds;
      const f = fields(info);
      shown = { step: info.step, payload: f };
      if (bar) bar.update(info.step, f);
      else if (info.step % every === 0 || info.step === info.maxSteps) {
        stream.write(`step ${info.step}/${info.maxSteps}  loss ${f.loss}  lr ${f.lr}  ${f.tps} tok/s  ETA ${f.etaText}\n`);
      }
    },
    onLog(entry: LogEntry) {
      if (typeof entry['eval_loss'] === 'number') say(`step ${entry['step']}: eval loss ${entry['eval_loss'].toFixed(4)}`);
    },
    onSave(dir: string) {
      say(`checkpoint written: ${dir}`);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  const t = Math.round(s);
  const m = Math.floor(t / 60);
  return m > 0 ? `${m}m${String(t % 60).padStart(2, '0')}s` : `${t}s`;
}
