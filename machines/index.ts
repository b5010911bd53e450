export * from './events.js';
export * from './stage.machine.js';
export * from './run.machine.js';
export * from './statuses.js';
export * from './graph.js';
export * from './persisted.js';
