import { encodePng, latentPreviewRgb, randn } from '../src/index.ts';
const lat = randn([1, 4, 16, 16], 1);
const map = { weights: [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], bias: [0.5, 0.5, 0.5] as [number, number, number] };
for (let i = 0; i < 50; i++) encodePng(latentPreviewRgb(lat, map));
let t = performance.now(); for (let i = 0; i < 500; i++) latentPreviewRgb(lat, map); console.log('rgb us', ((performance.now() - t) / 500 * 1000).toFixed(1));
const img = latentPreviewRgb(lat, map);
t = performance.now(); for (let i = 0; i < 500; i++) encodePng(img); console.log('png us', ((performance.now() - t) / 500 * 1000).toFixed(1));
