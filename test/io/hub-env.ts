/** Runs `run` with HF_HUB_OFFLINE=1, then puts the variable back as it was. */
export async function withOffline<T>(run: () => Promise<T>): Promise<T> {
  const saved = process.env.HF_HUB_OFFLINE;
  process.env.HF_HUB_OFFLINE = '1';
  try {
    return await run();
  } finally {
    if (saved === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = saved;
  }
}
