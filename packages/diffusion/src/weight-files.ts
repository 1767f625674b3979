/**
 * Where an ONNX graph's weights are on disk: the graph file, and the external data beside it under the names
 * exporters use (optimum: `model.onnx_data`; diffusers' old converter: `weights.pb`) and the derived graphs use
 * (`<graph>_data` for a conversion; the original's `model.onnx_data`, hard-linked, for a fused or gated graph).
 */
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** External weight files exporters write beside model.onnx. */
export const EXTERNAL_WEIGHT_FILES: readonly string[] = ['model.onnx_data', 'weights.pb'];

/** The bytes of a graph's weights: the file and the external data files found beside it (each counted once). */
export function weightFileBytes(path: string): number {
  const files = new Set([path, `${path}_data`, `${path}.data`, ...EXTERNAL_WEIGHT_FILES.map((f) => join(dirname(path), f))]);
  let total = 0;
  for (const file of files) {
    try {
      total += statSync(file).size;
    } catch {
      // not there: that name is not used by this graph
    }
  }
  return total;
}
