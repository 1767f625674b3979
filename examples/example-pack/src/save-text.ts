import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, posix, relative, resolve, sep } from 'node:path';
import { boolean, defineNode, NodeInputError, string } from '@gategraph/core';

export const SaveText = defineNode({
  id: 'SaveText',
  displayName: 'Save Text',
  category: 'examples/utils',
  description: 'Writes each text to <output>/<prefix>_00001_.txt, the next free number, like SaveImage.',
  inputs: {
    text: string({ forceInput: true }),
    filename_prefix: string({ default: 'gategraph/text', tooltip: 'May contain subfolders, inside the output folder.' }),
    save_prompt: boolean({ default: false, tooltip: 'Also write the prompt that made the text, as .prompt.json.' }),
  },
  // Hidden inputs are filled in by the executor, never shown in the editor.
  hidden: { prompt: 'PROMPT' },
  inputIsList: true,
  outputs: [],
  outputNode: true,
  async execute({ text: texts, filename_prefix, save_prompt, prompt }, ctx) {
    const prefix = filename_prefix[0] ?? 'gategraph/text';
    const folder = resolve(ctx.paths.output, posix.dirname(prefix));
    if (relative(ctx.paths.output, folder).split(sep)[0] === '..') {
      throw new NodeInputError(`filename_prefix "${prefix}" leads outside the output folder; use a relative path`, 'filename_prefix');
    }
    const base = posix.basename(prefix);
    await mkdir(folder, { recursive: true });
    let counter = await nextCounter(folder, base);
    const files = [];
    for (const [index, text] of texts.entries()) {
      ctx.throwIfAborted(); // stop between files when the user interrupts
      const filename = `${base}_${String(counter++).padStart(5, '0')}_.txt`;
      await writeFile(join(folder, filename), text);
      if (save_prompt[0]) await writeFile(join(folder, `${filename}.prompt.json`), JSON.stringify(prompt, null, 2));
      files.push({ filename, subfolder: relative(ctx.paths.output, folder).split(sep).join('/'), type: 'output' });
      ctx.progress(index + 1, texts.length);
    }
    ctx.log.info(`saved ${files.length} text file(s) in ${folder}`);
    return { ui: { text_files: files } };
  },
});

/** One more than the highest `<base>_NNNNN_` number in `folder`. */
async function nextCounter(folder: string, base: string): Promise<number> {
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d+)_`);
  let highest = 0;
  for (const name of await readdir(folder)) {
    const match = pattern.exec(name);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return highest + 1;
}
