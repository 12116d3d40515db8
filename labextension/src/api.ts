// The server extension's REST routes (DESIGN.md §1 "The Jupyter extension"), typed.
// Every request goes through ServerConnection so Jupyter's token and XSRF cookie apply.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface HistoryInfo {
  id: string;
  path: string;
  records: number;
  revision?: string;
  newest?: string | null;
  error?: string;
}

export interface ImageInfo {
  index: number;
  width: number | null;
  height: number | null;
  format: string | null;
  revised_prompt?: string | null;
}

/** The error of a failed record: the server sends the stored error document or a string. */
export type ErrorInfo =
  | string
  | {
      message?: string;
      type?: string;
      status?: number | null;
      code?: string | null;
      param?: string | null;
      [key: string]: unknown;
    }
  | null;

export interface RecordSummary {
  id: string;
  created_at: string | number;
  prompt: string;
  model: string;
  params: Record<string, unknown>;
  status: string;
  error: ErrorInfo;
  tags: string[];
  cost_usd: number | null;
  parent: string | null;
  images: ImageInfo[];
  timestamp?: number;
  meta?: Record<string, unknown>;
  kind?: string;
  cost_estimated?: boolean;
  synthetic?: boolean;
}

/** An edit's input (`sources`, in order: images, then the mask or the markup). */
export interface SourceInfo {
  position: number; // its place in `sources`: the K of its preview route
  index?: number | null; // the image of the record it came from
  role?: string;
  label?: string;
  filename?: string;
  record?: string | null; // the history record it came from
  width?: number | null;
  height?: number | null;
  format?: string | null;
  available?: boolean;
}

export interface RecordDetail extends RecordSummary {
  error_info?: ErrorInfo;
  http_status?: number | null;
  cost_basis?: string | null;
  usage?: Record<string, unknown> | null;
  elapsed_s?: number | null;
  origin?: string | null;
  revised_prompts?: Array<string | null>;
  sources?: SourceInfo[];
  lineage?: RecordSummary[]; // ancestors, oldest first, ending with this record
  children?: string[];
}

export interface Page {
  total: number;
  records: RecordSummary[];
  revision?: string;
  newest?: string | null;
}

export interface Counted {
  value: string;
  count: number;
}

export interface Facets {
  models: Counted[];
  tags: Counted[];
  statuses?: Counted[];
}

/** What the gallery asks for: the text box and the filters. Empty strings mean "any". */
export interface Query {
  history: string;
  q: string;
  model: string;
  tag: string;
  status: string;
  since: string; // yyyy-mm-dd, inclusive
  until: string; // yyyy-mm-dd, inclusive (the route's `until` is exclusive: the next day is sent)
  minCost: string;
  maxCost: string;
}

export const EMPTY_QUERY: Query = {
  history: '',
  q: '',
  model: '',
  tag: '',
  status: '',
  since: '',
  until: '',
  minCost: '',
  maxCost: ''
};

const API = 'cometnb/api';

export class ApiError extends Error {}

function settings(): ServerConnection.ISettings {
  return ServerConnection.makeSettings();
}

/** A URL under the server's base URL with the given query parameters (empty ones dropped). */
export function apiUrl(path: string, params: Record<string, string | number> = {}): string {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (value !== '' && value !== undefined && value !== null) {
      kept[key] = String(value);
    }
  }
  const query = URLExt.objectToQueryString(kept);
  return URLExt.join(settings().baseUrl, API, path) + query;
}

async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const response = await ServerConnection.makeRequest(url, { signal }, settings());
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      reason = String(body.message ?? body.reason ?? reason);
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(reason);
  }
  return (await response.json()) as T;
}

/** The day after a yyyy-mm-dd date, as yyyy-mm-dd (an inclusive "to" date). */
export function nextDay(date: string): string {
  if (!date) {
    return '';
  }
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString().slice(0, 10);
}

/** The query as the records route takes it. */
export function queryParams(query: Query): Record<string, string> {
  return {
    history: query.history,
    q: query.q.trim(),
    model: query.model,
    tag: query.tag,
    status: query.status,
    since: query.since,
    until: nextDay(query.until),
    min_cost: query.minCost,
    max_cost: query.maxCost
  };
}

export function fetchHistories(): Promise<{ histories: HistoryInfo[] }> {
  return getJson(apiUrl('histories'));
}

export function fetchPage(
  query: Query,
  offset: number,
  limit: number,
  signal?: AbortSignal
): Promise<Page> {
  return getJson(apiUrl('records', { ...queryParams(query), offset, limit }), signal);
}

export function fetchRecord(history: string, id: string): Promise<RecordDetail> {
  return getJson(apiUrl(`records/${encodeURIComponent(id)}`, { history }));
}

export function fetchFacets(history: string): Promise<Facets> {
  return getJson(apiUrl('facets', { history }));
}

export function previewUrl(history: string, id: string, index = 0): string {
  return apiUrl(`records/${encodeURIComponent(id)}/images/${index}/preview`, { history });
}

export function sourcePreviewUrl(history: string, id: string, index: number): string {
  return apiUrl(`records/${encodeURIComponent(id)}/sources/${index}/preview`, { history });
}

export function downloadUrl(history: string, id: string, index = 0): string {
  return apiUrl(`records/${encodeURIComponent(id)}/images/${index}/download`, { history });
}
