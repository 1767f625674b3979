// Judges a folder of generated images described by captions.json: [{ "file": "0000.png", "caption": "..." }].
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Domain } from './domain.ts';
import { readPng } from './image.ts';
import { judge, tally, type Tally, type Verdict } from './judge.ts';

export interface CaptionEntry {
  file: string;
  caption: string;
}

export function judgeFolder(folder: string, d: Domain): { verdicts: Verdict[]; tally: Tally } {
  const entries = JSON.parse(readFileSync(join(folder, 'captions.json'), 'utf8')) as CaptionEntry[];
  const verdicts = entries.map((e) => judge(e.caption, readPng(join(folder, e.file)), d));
  return { verdicts, tally: tally(verdicts) };
}
