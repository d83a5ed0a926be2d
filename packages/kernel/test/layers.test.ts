import { describe, expect, it } from 'vitest';
import { parseBlockRange } from '../src/index.js';

describe('parseBlockRange: one --layers syntax for every pruner', () => {
  it('reads A-B (inclusive) and START:END (exclusive, open ends), and nothing else', () => {
    expect(parseBlockRange('1-3')).toEqual({ start: 1, end: 4, text: '1-3' });
    expect(parseBlockRange(' 1 : 4 ')).toEqual({ start: 1, end: 4, text: ' 1 : 4 ' });
    expect(parseBlockRange('2:')).toEqual({ start: 2, end: null, text: '2:' });
    expect(parseBlockRange(':4')).toEqual({ start: 0, end: 4, text: ':4' });
    for (const notARange of ['3', '1,2', 'a-b', '-1:2', '1..3', '']) expect(parseBlockRange(notARange), notARange).toBeNull();
  });
});
