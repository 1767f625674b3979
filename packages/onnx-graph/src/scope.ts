// Export scopes: torch >= 1.13 names every ONNX node after the module path that created it, e.g.
// "/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul": scope
// ["down_blocks", ...] = down_blocks.0 > attentions.0 > transformer_blocks.0 > attn2 > to_q, op "MatMul".
// A wrapper module adds a prefix ("/unet/down_blocks.0/..."); we detect it from where the UNet's own top-level
// modules start and strip it, so module paths are the same for wrapped and unwrapped exports.

/** Scope segments of a node name, or undefined for names without a torch scope ("Identity_0", "", "Conv_12"). */
export function parseScope(nodeName: string): string[] | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const parts = nodeName.slice(1).split('/');
  parts.pop(); // the op name (MatMul, Constant_3)
  return parts;
}

/** Segments that open a diffusers UNet2DConditionModel's own module tree. */
const UNET_ROOTS = /^(conv_in|time_proj|time_embedding|down_blocks\.\d+|mid_block|up_blocks\.\d+|conv_norm_out|conv_out)$/;

/**
 * The wrapper prefix in front of the UNet's modules (e.g. ["unet"]), [] when there is none, or undefined when no
 * UNet module scope is seen at all.
 */
export function detectPrefix(nodeNames: Iterable<string>): string[] | undefined {
  const counts = new Map<string, number>();
  for (const name of nodeNames) {
    const scope = parseScope(name);
    if (!scope) continue;
    const at = scope.findIndex((s) => UNET_ROOTS.test(s));
    if (at < 0) continue;
    const key = scope.slice(0, at).join('/');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  if (counts.size === 0) return undefined;
  const [best] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
  return best === '' ? [] : best.split('/');
}

/** Scope of a node relative to the wrapper prefix ("down_blocks.0/attentions.0/..."), or undefined if outside. */
export function modulePathOf(nodeName: string, prefix: string[]): string | undefined {
  const scope = parseScope(nodeName);
  if (!scope || scope.length < prefix.length) return undefined;
  for (let i = 0; i < prefix.length; i++) if (scope[i] !== prefix[i]) return undefined;
  return scope.slice(prefix.length).join('/');
}

/** True if `path` is `module` or lies inside it ("a/b/c" is inside "a/b", "a/bc" is not). */
export function isInside(path: string, module: string): boolean {
  return path === module || path.startsWith(`${module}/`);
}
