// The records of one query, fetched a page at a time as the gallery scrolls to them.
// A new query (or a change on disk) starts a new generation: late answers for an older one
// are dropped, so a slow page can never overwrite the results of the text typed since.
import { ISignal, Signal } from '@lumino/signaling';

import { EMPTY_QUERY, fetchPage, Page, Query, RecordSummary } from './api';

export const PAGE_SIZE = 60;

export class RecordStore {
  /** Emitted when records arrive or the total changes; the gallery re-renders. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when a page could not be fetched (with the reason). */
  get failed(): ISignal<this, string> {
    return this._failed;
  }

  get query(): Query {
    return this._query;
  }

  /** Total records matching the query; -1 until the first page arrived. */
  get total(): number {
    return this._total;
  }

  get loading(): boolean {
    return this._inflight.size > 0;
  }

  get(index: number): RecordSummary | undefined {
    return this._pages.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE];
  }

  /** Every loaded record with this id (for a selection that scrolled away). */
  find(id: string): RecordSummary | undefined {
    for (const page of this._pages.values()) {
      const hit = page.find(r => r.id === id);
      if (hit) {
        return hit;
      }
    }
    return undefined;
  }

  /** A new query: forget what was loaded and fetch its first page. */
  setQuery(query: Query): Promise<void> {
    this._query = { ...query };
    this.reset();
    return this.ensure(0, 1);
  }

  /** Forget every page (the history changed on disk); the total stays until page 0 arrives. */
  reset(): void {
    this._generation += 1;
    this._pages.clear();
    for (const controller of this._inflight.values()) {
      controller.abort();
    }
    this._inflight.clear();
  }

  /** Fetch the pages that hold records [start, end) and are not loaded or on their way. */
  async ensure(start: number, end: number): Promise<void> {
    if (!this._query.history) {
      return;
    }
    const last = this._total >= 0 ? Math.min(end, this._total) : end;
    const first = Math.floor(Math.max(0, start) / PAGE_SIZE);
    const wanted: number[] = [];
    for (let page = first; page * PAGE_SIZE < Math.max(last, 1); page++) {
      if (!this._pages.has(page) && !this._inflight.has(page)) {
        wanted.push(page);
      }
    }
    await Promise.all(wanted.map(page => this._load(page)));
  }

  /** A cheap look: has the history changed since the pages were fetched? One unfiltered
   * record is asked for (so a slow text filter is not run again every few seconds); its
   * revision, history-wide, changes when a record is added or re-tagged. */
  async probe(): Promise<boolean> {
    if (!this._query.history) {
      return false;
    }
    const page = await fetchPage({ ...EMPTY_QUERY, history: this._query.history }, 0, 1);
    if (page.revision !== undefined && this._revision !== undefined) {
      return page.revision !== this._revision;
    }
    return (page.newest ?? page.records[0]?.id ?? null) !== this._newest;
  }

  /** Reload the pages that hold records [start, end) after a change on disk, swapping them in
   * only when they all arrived (no flash of empty cards while a kernel writes). */
  async refresh(start: number, end: number): Promise<void> {
    this._generation += 1;
    for (const controller of this._inflight.values()) {
      controller.abort();
    }
    this._inflight.clear();
    const generation = this._generation;
    const pages: number[] = [];
    for (let page = Math.floor(start / PAGE_SIZE); page * PAGE_SIZE < Math.max(end, 1); page++) {
      pages.push(page);
    }
    const results = await Promise.all(
      pages.map(page => fetchPage(this._query, page * PAGE_SIZE, PAGE_SIZE))
    );
    if (generation !== this._generation) {
      return;
    }
    this._pages = new Map(pages.map((page, i) => [page, results[i].records]));
    this._total = results[0].total;
    this._revision = results[0].revision;
    this._newest = results[0].newest ?? null;
    this._changed.emit();
  }

  private async _load(page: number): Promise<void> {
    const generation = this._generation;
    const controller = new AbortController();
    this._inflight.set(page, controller);
    let result: Page;
    try {
      result = await fetchPage(this._query, page * PAGE_SIZE, PAGE_SIZE, controller.signal);
    } catch (error) {
      if (generation === this._generation) {
        this._inflight.delete(page);
        this._failed.emit(error instanceof Error ? error.message : String(error));
      }
      return;
    }
    if (generation !== this._generation) {
      return; // an answer to a query nobody is looking at any more
    }
    this._inflight.delete(page);
    this._pages.set(page, result.records);
    this._total = result.total;
    this._revision = result.revision;
    this._newest = result.newest ?? null;
    this._changed.emit();
  }

  private _query: Query = { ...EMPTY_QUERY };
  private _total = -1;
  private _revision: string | undefined = undefined;
  private _newest: string | null = null;
  private _generation = 0;
  private _pages = new Map<number, RecordSummary[]>();
  private _inflight = new Map<number, AbortController>();
  private _changed = new Signal<this, void>(this);
  private _failed = new Signal<this, string>(this);
}
