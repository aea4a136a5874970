/**
 * The device the parameterized suites run on: 'cpu' by default, 'cuda' with LORAFORGE_TEST_DEVICE=cuda
 * (npm run test:cuda on the GPU machine).
 */
export const TEST_DEVICE = process.env['LORAFORGE_TEST_DEVICE'] ?? 'cpu';

export async function prepareTestDevice(): Promise<void> {
  if (TEST_DEVICE.startsWith('cuda')) {
    // Importing the package root registers the CUDA backend factory.
    await import('../../src/index.js');
  }
}
