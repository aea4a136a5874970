/** A mode that functions run under (a backend's batch-invariant matmuls): set for the call, restored however it ends, so calls nest. */
export class ModeFlag {
  private on = false;

  get active(): boolean {
    return this.on;
  }

  run<T>(fn: () => T): T {
    const previous = this.on;
    this.on = true;
    try {
      return fn();
    } finally {
      this.on = previous;
    }
  }
}
