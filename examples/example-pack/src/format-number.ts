import { boolean, combo, defineNode, float, int, string } from '@gategraph/core';

export const FormatNumber = defineNode({
  id: 'FormatNumber',
  displayName: 'Format Number',
  category: 'examples/text',
  description: 'Turns a number into text: fixed decimals, percent or scientific notation.',
  inputs: {
    value: float({ default: 0, min: -1e12, max: 1e12, step: 0.01, round: false }),
    decimals: int({ default: 2, min: 0, max: 10, display: 'slider' }),
    style: combo(['plain', 'percent', 'scientific'], { default: 'plain' }),
    grouping: boolean({ default: true, labelOn: '1,234', labelOff: '1234', advanced: true }),
    prefix: string({ default: '', placeholder: 'e.g. $', tooltip: 'Written before the number.' }),
  },
  outputs: [{ type: 'STRING' }],
  execute({ value, decimals, style, grouping, prefix }) {
    const text =
      style === 'scientific'
        ? value.toExponential(decimals)
        : (style === 'percent' ? value * 100 : value).toLocaleString('en-US', {
            minimumFractionDigits: decimals,
            maximumFractionDigits: decimals,
            useGrouping: grouping,
          }) + (style === 'percent' ? '%' : '');
    return [prefix + text];
  },
});
