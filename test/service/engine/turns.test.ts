import { describe, expect, it } from 'vitest';
import { TurnBudget } from '../../../service/engine/turns.js';

describe('TurnBudget', () => {
  it('shares one budget among every chain that resumes in a turn', async () => {
    // A clock that moves only when an item works: each item takes 0.25 ms of a 1 ms budget.
    let clock = 0;
    const budget = new TurnBudget(1, () => clock);
    const perTurn: number[] = [0];
    let spinning = true;
    const spin = () => {
      perTurn.push(0);
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    // 12 chains of 40 instant items each, as 12 runs with one item in flight.
    const chain = async () => {
      for (let i = 0; i < 40; i += 1) {
        await budget.yieldIfSpent();
        clock += 0.25;
        perTurn[perTurn.length - 1]! += 1;
      }
    };
    await Promise.all(Array.from({ length: 12 }, chain));
    spinning = false;
    expect(perTurn.reduce((a, b) => a + b, 0)).toBe(480);
    // The budget's 4 items, plus at most one more per chain that resumed in the turn. A budget
    // per resumed chain lets a turn run 4 items of each: 48.
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(4 + 12);
  });

  it('goes on at once while the turn has budget left', async () => {
    let clock = 0;
    const budget = new TurnBudget(1, () => clock);
    let turned = false;
    setImmediate(() => (turned = true));
    for (let i = 0; i < 3; i += 1) {
      await budget.yieldIfSpent();
      clock += 0.25;
    }
    expect(turned).toBe(false);
  });
});
