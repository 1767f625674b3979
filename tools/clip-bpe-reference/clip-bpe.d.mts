// Types of clip-bpe.mjs, so TypeScript tests can use the oracle under `strict`.
export function bytesToUnicode(): string[];
export function normalizeClipText(text: string): string;
export function clipWords(normalized: string): string[];
export function parseMerges(text: string): [string, string][];
export class ClipBpe {
  constructor(vocab: Record<string, number>, merges: readonly (readonly [string, string])[]);
  static fromFolder(dir: string): ClipBpe;
  readonly bosId: number;
  readonly eosId: number;
  idOf(token: string): number;
  bpe(word: string): string[];
  tokens(text: string): string[];
  encode(text: string): number[];
}
