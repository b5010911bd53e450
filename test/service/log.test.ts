import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Client } from 'pg';
import { describe, expect, it } from 'vitest';
import { logSerializers, redactSecrets, serializeError } from '../../service/log.js';
import { faultKind, faultReason, isDiskFull } from '../../service/store/faults.js';

describe('error serializer', () => {
  it('keeps message, code and stack only: never a pg client, never a password', () => {
    const url = 'postgresql://runstate:hunter2-secret@db.internal:5432/runstate';
    const client = new Client({ connectionString: url });
    const err = Object.assign(new Error(`could not reach ${url}`), { code: 'ECONNREFUSED', client, config: { password: 'hunter2-secret' } });
    const lines: string[] = [];
    const log = pino({ serializers: logSerializers }, new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) }));
    log.warn({ err }, 'an idle database connection failed');
    log.error({ error: err }, 'as error too');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).not.toContain('hunter2-secret');
      expect(line).not.toContain('connectionParameters');
      expect(line).toContain('postgresql://runstate:[redacted]@db.internal:5432/runstate');
    }
    expect(Object.keys(serializeError(err)).sort()).toEqual(['code', 'message', 'stack', 'type']);
  });

  it('redacts a password in a key=value connection string and survives values that are not errors', () => {
    expect(redactSecrets('host=db password=p4ss user=x')).toBe('host=db password=[redacted] user=x');
    expect(serializeError('postgres://a:b@c/d')).toEqual({ type: 'string', message: 'postgres://a:[redacted]@c/d' });
    expect(serializeError({ password: 'x' })).toEqual({ type: 'object', message: '[object Object]' });
  });
});

describe('fault classification', () => {
  it('tells faults that pass from real ones', () => {
    expect(faultKind(Object.assign(new Error('x'), { code: 'SQLITE_FULL' }))).toBe('disk');
    expect(faultKind(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe('disk');
    expect(faultKind(Object.assign(new Error('x'), { code: '57P01' }))).toBe('database');
    expect(faultKind(Object.assign(new Error('x'), { code: '08006' }))).toBe('database');
    expect(faultKind(new Error('Connection terminated unexpectedly'))).toBe('database');
    expect(faultKind(new Error('timeout exceeded when trying to connect'))).toBe('database');
    expect(faultKind(Object.assign(new Error('x'), { code: 'LEASE_LOST' }))).toBeUndefined();
    expect(faultKind(Object.assign(new Error('x'), { code: 'LEDGER_CONFLICT' }))).toBeUndefined();
    expect(faultKind(Object.assign(new Error('dup'), { code: '23505' }))).toBeUndefined();
    expect(faultKind(new TypeError('a bug'))).toBeUndefined();
    expect(isDiskFull(Object.assign(new Error('x'), { code: 'SQLITE_FULL' }))).toBe(true);
    expect(faultReason(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe('disk full');
    expect(faultReason(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('database unavailable (ECONNREFUSED)');
  });
});
