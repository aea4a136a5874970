/** Differentiable operations over every backend. Importing this module installs the autograd engine. */
import { add } from './elementwise.js';
import { installEngineOps } from './engine.js';
import { onesLike } from './creation.js';
import { contiguous } from './shape-ops.js';

installEngineOps({ add, onesLike, contiguous });

export * from './creation.js';
export * from './elementwise.js';
export * from './frozen-linear.js';
export * from './grouped-matmul.js';
export * from './linear-cross-entropy.js';
export * from './lora-linear.js';
export * from './matmul.js';
export * from './moe-routing.js';
export * from './multi-lora.js';
export * from './nn-ops.js';
export * from './reduce.js';
export * from './scatter-add.js';
export * from './shape-ops.js';
export { backendOf } from './engine.js';
