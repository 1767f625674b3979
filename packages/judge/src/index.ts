export * from './domain.ts';
export * from './image.ts';
export * from './render.ts';
export * from './judge.ts';
export * from './folder.ts';
