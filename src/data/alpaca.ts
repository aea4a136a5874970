/** The Stanford Alpaca prompt (with and without an input), as axolotl and the alpaca-lora recipes use it. */
export function alpacaPrompt(instruction: string, input: string): string {
  if (input === '') {
    return `Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n${instruction}\n\n### Response:\n`;
  }
  return `Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
}
