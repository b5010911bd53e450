import { describe, expect, it } from 'vitest';
import { approvalGate, reasonOf } from '../../web/lib/approval.js';
import { runView } from './fixtures.js';

const waiting = (over: Parameters<typeof runView>[0] = {}) =>
  runView({ status: 'awaiting_approval', state: 'awaiting_approval', current_stage: 2, allowed_commands: ['approve', 'reject', 'cancel'], ...over });

describe('approval gate', () => {
  it('names the stage a waiting run is held at, and what its buttons may do', () => {
    expect(approvalGate(waiting())).toEqual({ stage: 2, name: 'Stage 2', key: 's2', totalItems: null, canApprove: true, canReject: true });
  });

  it('enables only what the server allows', () => {
    expect(approvalGate(waiting({ allowed_commands: ['cancel'] }))).toMatchObject({ canApprove: false, canReject: false });
    expect(approvalGate(waiting({ allowed_commands: ['reject'] }))).toMatchObject({ canApprove: false, canReject: true });
  });

  it('is none for a run not waiting, or one whose stage the view does not list', () => {
    expect(approvalGate(runView({ status: 'running' }))).toBeNull();
    expect(approvalGate(runView({ status: 'paused', allowed_commands: ['approve'] }))).toBeNull();
    expect(approvalGate(waiting({ current_stage: null }))).toBeNull();
    expect(approvalGate(waiting({ current_stage: 9 }))).toBeNull();
  });

  it('sends a reason only when one was typed', () => {
    expect(reasonOf('  looks good ')).toBe('looks good');
    expect(reasonOf('   ')).toBeUndefined();
    expect(reasonOf('')).toBeUndefined();
  });
});
