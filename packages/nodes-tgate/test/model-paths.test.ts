// Model folders as ComfyUI lays them out and ComfyUI's extra_model_paths.yaml, on real files in temporary
// folders: what each kind lists (subfolders, hidden files, symlinks, ComfyUI's order), which folders are searched
// in which order, what a broken file says, how names resolve, and what the loader says about a single file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { validatePrompt, type Logger } from '@gategraph/core';
import {
  embeddingFolders,
  EXTRA_MODEL_PATHS_ENV,
  ExtraModelPathsError,
  extraModelPathsFiles,
  extraModelPathsProblem,
  listCheckpoints,
  listLoras,
  listModelNames,
  listVaes,
  modelFolderPaths,
  parseExtraModelPaths,
  readExtraModelPathsFile,
  resolveModelFile,
  resolveModelFolder,
  setModelPathsLogger,
} from '../src/folders.ts';
import { resetModelPathsWarnings } from '../src/extra-model-paths.ts';
import { defaultPrompt, host, packRegistry } from './helpers.ts';

const base = mkdtempSync(join(tmpdir(), 'gg-model-paths-'));
after(() => rmSync(base, { recursive: true, force: true }));

/** Writes `files` (paths relative to `root`; content a short text) and returns `root`. */
function tree(root: string, files: string[]): string {
  for (const file of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), file.endsWith('model_index.json') ? '{"_class_name":"OnnxStableDiffusionPipeline"}' : 'x');
  }
  return root;
}

/** Collects warnings instead of printing them. */
function captureWarnings(): string[] {
  const warnings: string[] = [];
  const push = (m: string) => void warnings.push(m);
  const logger: Logger = { debug() {}, info() {}, warn: push, error: push, child: () => logger };
  setModelPathsLogger(logger);
  resetModelPathsWarnings();
  return warnings;
}

const none = { extraConfigs: [] as string[] };

test('a kind lists its files recursively as sub/name with ComfyUI extensions, sorted by code point, hidden files skipped, symlinks followed', () => {
  const root = join(base, 'listing', 'models');
  tree(root, [
    'checkpoints/b.safetensors',
    'checkpoints/B.safetensors',
    'checkpoints/_first.ckpt',
    'checkpoints/sub/model.pt',
    'checkpoints/sub/deeper/other.SFT',
    'checkpoints/sub/weights.pth',
    'checkpoints/sub/w.bin',
    'checkpoints/sub/w.pkl',
    'checkpoints/sub/w.pt2',
    'checkpoints/notes.txt',
    'checkpoints/config.yaml',
    'checkpoints/.hidden.safetensors',
    'checkpoints/.git/objects.safetensors',
    'checkpoints/.gategraph-derived/x.safetensors',
    'checkpoints/onnx-sd/model_index.json',
    'checkpoints/onnx-sd/unet/diffusion_pytorch_model.safetensors',
    'checkpoints/nested/onnx-two/model_index.json',
    'elsewhere/linked.safetensors',
    'vae/sd-vae.safetensors',
    'vae/sub/kl-f8.pt',
    'loras/style/ink.safetensors',
    'embeddings/bad-hands.pt',
    'diffusers/dm/model_index.json',
    'diffusers/dm/unet/model.onnx',
    'diffusers/not-a-model/readme.safetensors',
    'text_encoders/clip_l.safetensors',
    'clip/legacy_clip.safetensors',
  ]);
  symlinkSync(join(root, 'elsewhere'), join(root, 'checkpoints', 'link-to-elsewhere'), 'dir');
  symlinkSync(join(root, 'checkpoints'), join(root, 'checkpoints', 'sub', 'loop'), 'dir'); // a loop ends
  symlinkSync(join(root, 'missing.safetensors'), join(root, 'checkpoints', 'dangling.safetensors'));
  const opts = { roots: [root], ...none };

  const checkpoints = listModelNames('checkpoints', opts);
  assert.deepEqual(checkpoints, [
    'B.safetensors',
    '_first.ckpt',
    'b.safetensors',
    'link-to-elsewhere/linked.safetensors',
    'nested/onnx-two',
    'onnx-sd',
    'sub/deeper/other.SFT',
    'sub/model.pt',
    'sub/w.bin',
    'sub/w.pkl',
    'sub/w.pt2',
    'sub/weights.pth',
  ]);
  assert.deepEqual(listModelNames('vae', opts), ['sd-vae.safetensors', 'sub/kl-f8.pt']);
  assert.deepEqual(listModelNames('loras', opts), ['style/ink.safetensors']);
  assert.deepEqual(listModelNames('embeddings', opts), ['bad-hands.pt']);
  assert.deepEqual(listModelNames('diffusers', opts), ['dm'], 'diffusers lists ONNX model folders only');
  assert.deepEqual(listModelNames('text_encoders', opts), ['clip_l.safetensors', 'legacy_clip.safetensors'], 'text_encoders/ and the legacy clip/');
  assert.deepEqual(modelFolderPaths('text_encoders', opts), [join(root, 'text_encoders'), join(root, 'clip')]);
});

test('ckpt_name lists ONNX folders directly in the models folder (as before), checkpoint files and ONNX folders of checkpoints/, and diffusers/ folders', () => {
  const root = tree(join(base, 'ckpt', 'models'), [
    'tiny-copy/model_index.json',
    'loose.safetensors',
    'checkpoints/sd15/v1-5-pruned-emaonly.safetensors',
    'checkpoints/onnx-in-checkpoints/model_index.json',
    'diffusers/onnx-in-diffusers/model_index.json',
    'vae/not-a-checkpoint.safetensors',
  ]);
  const listed = listCheckpoints({ paths: { ...host.paths, models: root } });
  for (const name of ['tiny-copy', 'loose.safetensors', 'sd15/v1-5-pruned-emaonly.safetensors', 'onnx-in-checkpoints', 'onnx-in-diffusers', 'tiny-sd']) {
    assert.ok(listed.includes(name), `${name} is listed: ${listed.join(', ')}`);
  }
  assert.ok(!listed.includes('not-a-checkpoint.safetensors') && !listed.includes('vae'), 'other kinds are not checkpoints');
  assert.deepEqual([...listed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), listed, 'sorted by code point');

  // Each resolves where it is; the embedded model still resolves as before.
  assert.equal(resolveModelFolder('tiny-copy', root).dir, join(root, 'tiny-copy'));
  assert.equal(resolveModelFolder('onnx-in-checkpoints', root).dir, join(root, 'checkpoints', 'onnx-in-checkpoints'));
  assert.equal(resolveModelFolder('onnx-in-diffusers', root).dir, join(root, 'diffusers', 'onnx-in-diffusers'));
  assert.equal(resolveModelFolder('sd15/v1-5-pruned-emaonly.safetensors', root).dir, join(root, 'checkpoints', 'sd15', 'v1-5-pruned-emaonly.safetensors'));
  assert.equal(resolveModelFolder('tiny-sd', host.paths.models).dir, join(host.paths.models, 'tiny-sd'));
  assert.equal(resolveModelFolder('../ckpt/models/tiny-copy', join(root, 'checkpoints')).dir, undefined, 'a name leaving the folders resolves to nothing');
});

/** An existing ComfyUI install and an A1111 webui next to each other, and an extra_model_paths.yaml for both. */
function installs(): { yaml: string; comfy: string; webui: string; root: string } {
  const dir = join(base, 'installs');
  const comfy = tree(join(dir, 'ComfyUI'), [
    'models/checkpoints/comfy-ckpt.safetensors',
    'models/checkpoints/shared.safetensors',
    'models/vae/comfy-vae.safetensors',
    'models/loras/comfy-lora.safetensors',
    'models/text_encoders/t5.safetensors',
    'models/clip/clip_g.safetensors',
    'models/embeddings/comfy-emb.safetensors',
    'models/diffusers/comfy-onnx/model_index.json',
  ]);
  const webui = tree(join(dir, 'stable-diffusion-webui'), [
    'models/Stable-diffusion/v1-5.safetensors',
    'models/Stable-diffusion/shared.safetensors',
    'models/Stable-diffusion/anime/anything.ckpt',
    'models/Stable-diffusion/v1-5.yaml',
    'models/VAE/vae-ft-mse.pt',
    'models/Lora/a1111-lora.safetensors',
    'models/LyCORIS/locon.safetensors',
    'embeddings/easynegative.safetensors',
  ]);
  const root = tree(join(dir, 'gategraph', 'models'), ['checkpoints/local.safetensors', 'loras/local-lora.safetensors']);
  const yaml = join(dir, 'config', 'extra_model_paths.yaml');
  mkdirSync(dirname(yaml), { recursive: true });
  writeFileSync(
    yaml,
    [
      '# the ComfyUI install: its folders first',
      'comfyui:',
      '     base_path: ../ComfyUI/',
      '     is_default: true',
      '     checkpoints: models/checkpoints/',
      '     text_encoders: |',
      '          models/text_encoders/',
      '          models/clip/  # legacy location still supported',
      '     embeddings: models/embeddings/',
      '     loras: models/loras/',
      '     vae: models/vae/',
      '     diffusers: models/diffusers',
      '     controlnet: models/controlnet/',
      '',
      'a111:',
      '     base_path: ../stable-diffusion-webui',
      '     checkpoints: models/Stable-diffusion',
      '     configs: models/Stable-diffusion',
      '     vae: models/VAE',
      '     loras: |',
      '          models/Lora',
      '          models/LyCORIS',
      '     upscale_models: |',
      '                   models/ESRGAN',
      '                   models/RealESRGAN',
      '     embeddings: embeddings',
      '     hypernetworks: models/hypernetworks',
      '     controlnet: models/ControlNet',
      '',
      'other_ui:',
      '',
    ].join('\n'),
  );
  return { yaml, comfy, webui, root };
}

test('extra_model_paths.yaml: ComfyUI and A1111 sections, base_path relative to the file, multi-line values, is_default first', () => {
  const { yaml, comfy, webui, root } = installs();
  const warnings = captureWarnings();
  const opts = { roots: [root], extraConfigs: [yaml] };

  assert.deepEqual(modelFolderPaths('checkpoints', opts), [
    join(comfy, 'models', 'checkpoints'), // is_default: in front of the built-in folder
    join(root, 'checkpoints'),
    join(webui, 'models', 'Stable-diffusion'), // appended, in file order
  ]);
  assert.deepEqual(modelFolderPaths('loras', opts), [
    join(comfy, 'models', 'loras'),
    join(root, 'loras'),
    join(webui, 'models', 'Lora'),
    join(webui, 'models', 'LyCORIS'),
  ]);
  assert.deepEqual(modelFolderPaths('text_encoders', opts), [
    join(comfy, 'models', 'clip'), // each is_default folder goes in front of the ones before it, as in ComfyUI
    join(comfy, 'models', 'text_encoders'),
    join(root, 'text_encoders'),
    join(root, 'clip'),
  ]);

  assert.deepEqual(listModelNames('checkpoints', opts), [
    'anime/anything.ckpt',
    'comfy-ckpt.safetensors',
    'local.safetensors',
    'shared.safetensors',
    'v1-5.safetensors',
  ]);
  assert.deepEqual(listLoras({ paths: { ...host.paths, models: root } }).filter((n) => !n.startsWith('local')), [], 'without the file: only the local loras');
  assert.deepEqual(listModelNames('loras', opts), ['a1111-lora.safetensors', 'comfy-lora.safetensors', 'local-lora.safetensors', 'locon.safetensors']);
  assert.deepEqual(listModelNames('vae', opts), ['comfy-vae.safetensors', 'vae-ft-mse.pt']);
  assert.deepEqual(listModelNames('embeddings', opts), ['comfy-emb.safetensors', 'easynegative.safetensors']);
  assert.deepEqual(listModelNames('text_encoders', opts), ['clip_g.safetensors', 't5.safetensors']);
  assert.deepEqual(listModelNames('diffusers', opts), ['comfy-onnx']);

  // A name in two folders resolves to the first folder's file: the is_default install wins.
  assert.equal(resolveModelFile('checkpoints', 'shared.safetensors', undefined, opts).file, join(comfy, 'models', 'checkpoints', 'shared.safetensors'));
  assert.equal(resolveModelFile('checkpoints', 'anime/anything.ckpt', undefined, opts).file, join(webui, 'models', 'Stable-diffusion', 'anime', 'anything.ckpt'));
  assert.equal(resolveModelFile('vae', 'vae-ft-mse.pt', undefined, opts).file, join(webui, 'models', 'VAE', 'vae-ft-mse.pt'));
  assert.equal(resolveModelFile('diffusers', 'comfy-onnx', undefined, opts).file, join(comfy, 'models', 'diffusers', 'comfy-onnx'));

  // Folders the file names that are not there (the webui has no ESRGAN...; the ComfyUI install no controlnet) are
  // skipped when listed, each said once; kinds gategraph does not use are not looked at.
  listModelNames('checkpoints', opts);
  assert.deepEqual(warnings, []);
  const broken = join(base, 'installs', 'config', 'missing-folder.yaml');
  writeFileSync(broken, 'mine:\n  base_path: /nonexistent/gg-nowhere\n  vae: models/VAE\n');
  listModelNames('vae', { roots: [root], extraConfigs: [broken] });
  listModelNames('vae', { roots: [root], extraConfigs: [broken] });
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /missing-folder\.yaml line 3: section "mine", vae: \/nonexistent\/gg-nowhere\/models\/VAE is not a folder; skipped/);
});

test('extra_model_paths.yaml: no base_path takes paths from the file\'s folder; ~ and $VARS in base_path; absolute values kept; lists taken', () => {
  const file = join(base, 'semantics', 'extra.yaml');
  const parsed = parseExtraModelPaths(
    [
      'plain:',
      '  checkpoints: ckpts',
      '  vae: /abs/vae',
      'home:',
      '  base_path: ~/sd',
      '  loras: loras',
      'vars:',
      '  base_path: ${GG_TEST_ROOT}/x',
      '  clip: clip',
      '  is_default: yes',
      'listed:',
      '  base_path: /srv',
      '  embeddings: [one, two]',
      'odd:',
      '  vae:',
      '  loras: 3',
    ].join('\n'),
    file,
    { GG_TEST_ROOT: '/data' },
  );
  const got = parsed.paths.map((p) => [p.section, p.kind, p.path, p.isDefault]);
  assert.deepEqual(got, [
    ['plain', 'checkpoints', join(base, 'semantics', 'ckpts'), false],
    ['plain', 'vae', '/abs/vae', false],
    ['home', 'loras', join(homedir(), 'sd', 'loras'), false],
    ['vars', 'clip', '/data/x/clip', true],
    ['listed', 'embeddings', '/srv/one', false],
    ['listed', 'embeddings', '/srv/two', false],
  ]);
  assert.equal(parsed.warnings.length, 2);
  assert.match(parsed.warnings[0]!, /extra\.yaml line 15: section "odd", vae: expected a folder or several \(one a line\), found nothing; skipped/);
  assert.match(parsed.warnings[1]!, /line 16: section "odd", loras: expected .* found number 3; skipped/);
  // the legacy key `clip` counts as text_encoders
  assert.deepEqual(
    modelFolderPaths('text_encoders', { roots: [], extraConfigs: [writeYaml('legacy.yaml', 'x:\n  base_path: /tmp/gg\n  clip: c\n')] }),
    ['/tmp/gg/c'],
  );
  // an empty file adds nothing, and says nothing
  assert.deepEqual(parseExtraModelPaths('', file), { paths: [], warnings: [] });
  assert.deepEqual(parseExtraModelPaths('# all commented out\n#comfyui:\n#  base_path: x\n', file), { paths: [], warnings: [] });
});

function writeYaml(name: string, text: string): string {
  const file = join(base, 'yaml', name);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

test('a broken or missing extra_model_paths.yaml is one sentence naming the file and the line, and its folders are skipped', () => {
  const bad = writeYaml('bad.yaml', 'comfyui:\n  base_path: /x\n  checkpoints: models: x\n');
  assert.throws(
    () => readExtraModelPathsFile(bad),
    (error: unknown) => {
      assert.ok(error instanceof ExtraModelPathsError);
      assert.equal(error.line, 3);
      assert.match(error.message, new RegExp(`^${bad.replace(/[.]/g, '\\.')} is not valid YAML: line 3, column 16: Nested mappings are not allowed in compact mappings$`));
      return true;
    },
  );
  assert.match(extraModelPathsProblem(bad)!, /bad\.yaml is not valid YAML: line 3/);
  assert.equal(extraModelPathsProblem(join(base, 'yaml', 'nope.yaml')), `${join(base, 'yaml', 'nope.yaml')} (an extra_model_paths.yaml) does not exist`);
  const list = writeYaml('list.yaml', '- models/checkpoints\n- models/vae\n');
  assert.match(extraModelPathsProblem(list)!, /list\.yaml line 1: expected sections such as "comfyui:" with base_path and folder kinds under them, found a list/);
  const tabs = writeYaml('tabs.yaml', 'comfyui:\n\tbase_path: x\n');
  assert.match(extraModelPathsProblem(tabs)!, /tabs\.yaml is not valid YAML: line 2, column 1: Tabs are not allowed as indentation/);

  // Listing goes on without it, saying why once.
  const warnings = captureWarnings();
  const root = tree(join(base, 'bad-root', 'models'), ['vae/ok.safetensors']);
  for (let i = 0; i < 3; i++) assert.deepEqual(listModelNames('vae', { roots: [root], extraConfigs: [bad, join(base, 'yaml', 'nope.yaml')] }), ['ok.safetensors']);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /bad\.yaml is not valid YAML: line 3, column \d+: .*; its model folders are not searched$/);
  assert.match(warnings[1]!, /nope\.yaml \(an extra_model_paths\.yaml\) does not exist; its model folders are not searched$/);

  // Fixed: read again (the file changed), no restart.
  writeFileSync(bad, 'comfyui:\n  base_path: /x\n  checkpoints: models\n');
  assert.deepEqual(readExtraModelPathsFile(bad).paths.map((p) => p.path), ['/x/models']);
});

test('names that leave the folders are refused: .., absolute paths', () => {
  const root = tree(join(base, 'escape', 'models'), ['vae/ok.safetensors', 'secret.safetensors', 'loras/sub/l.safetensors']);
  const opts = { roots: [root], ...none };
  assert.equal(resolveModelFile('vae', 'ok.safetensors', undefined, opts).file, join(root, 'vae', 'ok.safetensors'));
  assert.equal(resolveModelFile('loras', 'sub/l.safetensors', undefined, opts).file, join(root, 'loras', 'sub', 'l.safetensors'));
  for (const name of ['../secret.safetensors', 'sub/../../secret.safetensors', '..', join(root, 'secret.safetensors'), '/etc/passwd', '..\\secret.safetensors', 'C:\\models\\x.safetensors', '']) {
    const resolved = resolveModelFile('vae', name, undefined, opts);
    assert.equal(resolved.file, undefined, name);
    assert.ok(resolved.refused, `${name} is refused with a reason`);
  }
  assert.match(resolveModelFile('vae', '../secret.safetensors', undefined, opts).refused!, /leaves the model folders/);
  assert.match(resolveModelFile('vae', '/etc/passwd', undefined, opts).refused!, /absolute path/);
  const missing = resolveModelFile('vae', 'nope.safetensors', undefined, opts);
  assert.deepEqual(missing, { searched: [join(root, 'vae')] });
  // a folder of the name is not a file (except an ONNX model folder for checkpoints / diffusers)
  assert.equal(resolveModelFile('loras', 'sub', undefined, opts).file, undefined);
});

test('the hosts\' GATEGRAPH_EXTRA_MODEL_PATHS reaches the combos, the embeddings lookup, and the loader; a single file is refused by validation', async () => {
  const { yaml, comfy, webui } = installs();
  const root = tree(join(base, 'env', 'models'), ['checkpoints/mine/pickled.ckpt', 'checkpoints/packed.sft']);
  const context = { paths: { ...host.paths, models: root } };
  const before = process.env[EXTRA_MODEL_PATHS_ENV];
  process.env[EXTRA_MODEL_PATHS_ENV] = yaml;
  try {
    assert.deepEqual(extraModelPathsFiles([join(base, 'no-yaml-here')]), [yaml]);
    const ckpts = listCheckpoints(context);
    for (const name of ['tiny-sd', 'comfy-ckpt.safetensors', 'anime/anything.ckpt', 'comfy-onnx', 'mine/pickled.ckpt', 'packed.sft']) {
      assert.ok(ckpts.includes(name), `${name} in ${ckpts.join(', ')}`);
    }
    assert.ok(listVaes(context).includes('vae-ft-mse.pt'));
    assert.ok(listLoras(context).includes('locon.safetensors'));
    const embeddings = embeddingFolders(root);
    assert.equal(embeddings[0], join(comfy, 'models', 'embeddings'), 'is_default first');
    assert.equal(embeddings[1], join(root, 'embeddings'), 'then the host folder');
    assert.equal(embeddings.at(-1), join(webui, 'embeddings'), 'the A1111 embeddings last');
    assert.equal(resolveModelFolder('comfy-onnx', root).dir, join(comfy, 'models', 'diffusers', 'comfy-onnx'));

    const registry = await packRegistry();
    const check = async (ckpt: string) => {
      const prompt = defaultPrompt();
      prompt['4']!.inputs.ckpt_name = ckpt;
      const result = await validatePrompt(prompt, registry, { context });
      assert.equal(result.ok, false, ckpt);
      return result.nodeErrors['4']!.errors.map((e) => e.message).join('\n');
    };
    // Empty files stand in for the checkpoints here: read, and refused as unreadable (never as unsupported).
    assert.match(await check('v1-5.safetensors'), /ckpt_name "v1-5\.safetensors": this is not a readable safetensors file: /);
    assert.match(await check('packed.sft'), /ckpt_name "packed\.sft": this is not a readable safetensors file: /);
    assert.match(await check('mine/pickled.ckpt'), /ckpt_name "mine\/pickled\.ckpt": this is a Python pickle .*never opens it\. Convert it once to \.safetensors/);
    assert.match(await check('../secret'), /Input "ckpt_name" is "..\/secret", which is not/);
  } finally {
    if (before === undefined) delete process.env[EXTRA_MODEL_PATHS_ENV];
    else process.env[EXTRA_MODEL_PATHS_ENV] = before;
  }
  assert.ok(!listCheckpoints(context).includes('comfy-ckpt.safetensors'), 'gone with the variable');
});

test('extra_model_paths.yaml in the workspace root is read first, then the files of GATEGRAPH_EXTRA_MODEL_PATHS', () => {
  const ws = join(base, 'workspace');
  const own = writeYaml('../workspace/extra_model_paths.yaml', 'a:\n  vae: v\n');
  const one = writeYaml('one.yaml', 'b:\n  vae: v\n');
  const two = writeYaml('two.yaml', 'c:\n  vae: v\n');
  assert.deepEqual(extraModelPathsFiles([ws], { [EXTRA_MODEL_PATHS_ENV]: [one, two].join(':') }), [own, one, two]);
  assert.deepEqual(extraModelPathsFiles([join(base, 'nothing')], {}), []);
});
