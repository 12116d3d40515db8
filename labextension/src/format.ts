// How a record reads in a caption: settings line, cost, age and the error's reason.
import { ErrorInfo, RecordSummary } from './api';

/** The record's settings that a caption shows: model · size · quality (when set). */
export function settingsLine(rec: RecordSummary): string {
  const parts = [rec.model];
  // What was asked for; else what the server reported (a default it chose).
  const size = rec.params?.size ?? rec.meta?.size;
  const quality = rec.params?.quality ?? rec.meta?.quality;
  if (typeof size === 'string' && size) {
    parts.push(size.replace('x', '×'));
  }
  if (typeof quality === 'string' && quality) {
    parts.push(quality);
  }
  return parts.join(' · ');
}

/** `$0.053`, `≈ $0.05` for an estimate, `cost unknown` when the price is not known. */
export function costText(usd: number | null | undefined, estimated = false): string {
  if (usd === null || usd === undefined || Number.isNaN(usd)) {
    return 'cost unknown';
  }
  if (usd === 0) {
    return '$0';
  }
  const digits = Math.abs(usd) < 0.01 ? 4 : 3;
  return `${estimated ? '≈ ' : ''}$${usd.toFixed(digits)}`;
}

export function createdDate(created: string | number): Date {
  return typeof created === 'number' ? new Date(created * 1000) : new Date(created);
}

/** `just now`, `5 min ago`, `3 h ago`, `2 d ago`, then the date. */
export function ageText(created: string | number, now: number = Date.now()): string {
  const when = createdDate(created);
  const seconds = Math.max(0, (now - when.getTime()) / 1000);
  if (Number.isNaN(seconds)) {
    return '';
  }
  if (seconds < 45) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.round(seconds / 3600)} h ago`;
  }
  if (seconds < 86400 * 14) {
    return `${Math.round(seconds / 86400)} d ago`;
  }
  return when.toLocaleDateString();
}

/** The error's reason in one line (its message; the HTTP status and code when known). */
export function errorReason(error: ErrorInfo, status: string): string {
  if (!error) {
    return status === 'cancelled' ? 'cancelled' : 'failed';
  }
  if (typeof error === 'string') {
    return error;
  }
  const message = String(error.message ?? error.type ?? 'failed');
  const extra = [error.status, error.code].filter(v => v !== null && v !== undefined && v !== '');
  return extra.length ? `${message} (${extra.join(', ')})` : message;
}

/** The whole error document, readable (detail view). */
export function errorFull(error: ErrorInfo): string {
  if (!error) {
    return '';
  }
  if (typeof error === 'string') {
    return error;
  }
  return Object.entries(error)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('\n');
}

export function valueText(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value);
}
