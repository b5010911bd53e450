// @vitest-environment jsdom
// The approval panel and its asking Reject: what they send, what they enable, and where the focus goes.
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Api } from '../../web/lib/api.js';
import { ApiError } from '../../web/lib/api.js';
import type { RunView } from '../../web/lib/run-model.js';
import { ApprovalPanel } from '../../web/ui/ApprovalPanel.js';
import { runView } from './fixtures.js';

const waiting = (allowed: RunView['allowed_commands'] = ['approve', 'reject', 'cancel']) =>
  runView({ status: 'awaiting_approval', state: 'awaiting_approval', current_stage: 2, allowed_commands: allowed });

/** An API that records the commands sent and answers them as told. */
function apiThat(answer: () => Promise<unknown>, items: { total_items: number | null; titles: string[] } = { total_items: null, titles: [] }) {
  const sent: [string, string, string | undefined][] = [];
  const api = {
    command: (runId: string, command: string, reason?: string) => {
      sent.push([runId, command, reason]);
      return answer();
    },
    items: () => Promise.resolve({ stage: 2, total_items: items.total_items, data: items.titles.map((title, i) => ({ id: i, title })), counts: {}, next_after: null }),
  } as unknown as Api;
  return { api, sent };
}

describe('approval panel', () => {
  afterEach(cleanup);

  it('shows nothing for a run that does not wait', () => {
    const { api } = apiThat(() => Promise.resolve({}));
    const { container } = render(<ApprovalPanel api={api} run={runView()} />);
    expect(container.innerHTML).toBe('');
  });

  it('names the waiting stage and its items, and sends Approve with the reason typed', async () => {
    const { api, sent } = apiThat(() => Promise.resolve({}), { total_items: 7, titles: ['a', 'b'] });
    render(<ApprovalPanel api={api} run={waiting()} />);
    await screen.findByText('It will process 7 items: a, b, …');
    const panel = screen.getByRole('region', { name: 'Waiting for approval' });
    expect(panel.textContent).toContain('Stage 2 of 2, Stage 2 (s2)');
    expect(panel.querySelector('[data-approval-items]')!.textContent).toBe('It will process 7 items: a, b, …');
    fireEvent.change(screen.getByLabelText('Reason (optional, recorded in the log)'), { target: { value: ' ship it ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Approve' }));
    await waitFor(() => expect(sent).toEqual([['run_20250101_000000_manual', 'approve', 'ship it']]));
  });

  it('keeps its buttons off after a command until the view moves on', async () => {
    const { api } = apiThat(() => Promise.resolve({}));
    const run = waiting();
    const { rerender } = render(<ApprovalPanel api={api} run={run} />);
    fireEvent.click(screen.getByRole('button', { name: 'Approve' }));
    await waitFor(() => expect(screen.getByLabelText<HTMLInputElement>('Reason (optional, recorded in the log)').value).toBe(''));
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Approve' }).disabled).toBe(true);
    // A run that reaches a second gate later is a newer view: the buttons are on again.
    rerender(<ApprovalPanel api={api} run={{ ...run, last_seq: run.last_seq + 5 }} />);
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Approve' }).disabled).toBe(false);
  });

  it('enables only the commands the server allows', () => {
    const { api } = apiThat(() => Promise.resolve({}));
    render(<ApprovalPanel api={api} run={waiting(['cancel', 'reject'])} />);
    expect((screen.getByRole('button', { name: 'Approve' }) as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByRole('button', { name: 'Reject' }) as HTMLButtonElement).disabled).toBe(false);
  });

  it('asks before rejecting, with the focus on the answer; Escape asks nothing and sends nothing', async () => {
    const { api, sent } = apiThat(() => Promise.resolve({}));
    render(<ApprovalPanel api={api} run={waiting()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Reject' }));
    const yes = screen.getByRole('button', { name: 'Yes, reject' });
    expect(document.activeElement).toBe(yes);
    fireEvent.keyDown(yes, { key: 'Escape' });
    expect(screen.queryByRole('button', { name: 'Yes, reject' })).toBeNull();
    expect(document.activeElement).toBe(screen.getByRole('button', { name: 'Reject' }));
    expect(sent).toEqual([]);
    fireEvent.click(screen.getByRole('button', { name: 'Reject' }));
    fireEvent.click(screen.getByRole('button', { name: 'Yes, reject' }));
    await waitFor(() => expect(sent).toEqual([['run_20250101_000000_manual', 'reject', undefined]]));
  });

  it('says in the page what the API refused, and the buttons work again', async () => {
    const { api } = apiThat(() => Promise.reject(new ApiError(409, 'COMMAND_NOT_ALLOWED', 'Cannot approve a run that is cancelled.')));
    render(<ApprovalPanel api={api} run={waiting()} />);
    fireEvent.click(screen.getByRole('button', { name: 'Approve' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Approve failed: Cannot approve a run that is cancelled.');
    await waitFor(() => expect((screen.getByRole('button', { name: 'Approve' }) as HTMLButtonElement).disabled).toBe(false));
  });
});
