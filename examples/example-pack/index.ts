import { definePack } from '@gategraph/core';
import { FormatNumber } from './src/format-number.ts';
import { AverageNumbers, HalfOf, IntCompare, IntMath, OutputGate, WaitSeconds } from './src/flow-helpers.ts';
import { WhileLoopClose, WhileLoopOpen } from './src/while-loop.ts';
import { ImageBlend } from './src/image-blend.ts';
import { RandomSeedList } from './src/random-seed-list.ts';
import { RegexReplace } from './src/regex-replace.ts';
import { RescaleCFG } from './src/rescale-cfg.ts';
import { SaveText } from './src/save-text.ts';
import { ShowText } from './src/show-text.ts';
import { StringConcat } from './src/string-concat.ts';
import { SwitchString } from './src/switch-string.ts';
import { FormatTextStats, TextStats } from './src/text-stats.ts';

export default definePack({
  name: 'example-pack',
  nodes: [
    StringConcat,
    SwitchString,
    RegexReplace,
    FormatNumber,
    TextStats,
    FormatTextStats,
    RandomSeedList,
    ShowText,
    SaveText,
    ImageBlend,
    RescaleCFG,
    WhileLoopOpen,
    WhileLoopClose,
    IntMath,
    IntCompare,
    OutputGate,
    AverageNumbers,
    WaitSeconds,
    HalfOf,
  ],
  // Served at /extensions/example-pack/; the editor imports every .js file in it.
  webDirectory: 'web',
});
