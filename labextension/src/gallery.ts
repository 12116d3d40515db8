// The virtual thumbnail grid: a spacer as tall as every row, and card elements only for the
// rows in view (plus a few either side), recycled as the user scrolls. Pages are fetched when
// their rows come into view, so 10,000 records cost what one screenful costs.
//
// Keyboard: the grid is one tab stop (a listbox with aria-activedescendant, so the active card
// can be recycled without losing focus); arrows / Home / End / PageUp / PageDown move, Enter
// opens the detail view, Space toggles the record's selection for comparison.
import { ISignal, Signal } from '@lumino/signaling';

import { previewUrl, RecordSummary } from './api';
import { ageText, costText, errorReason, settingsLine } from './format';
import { RecordStore } from './store';

// Two layouts: a list (thumbnail beside its caption) in a narrow sidebar, a grid of cards
// once there is room for two of them. Rows have a fixed height in each, so the row at any
// scroll offset is known without measuring.
const LIST_ROW_HEIGHT = 104;
const GRID_ROW_HEIGHT = 222;
const MIN_CARD_WIDTH = 150;
const LIST_BELOW_WIDTH = 2 * MIN_CARD_WIDTH;
const OVERSCAN_ROWS = 2;

let nextGalleryId = 0;

/** What stands in for a picture the server has no raster preview of (an SVG without one). */
export function noPreview(format: string | null): HTMLElement {
  const node = document.createElement('span');
  node.className = 'cometnb-sb-no-preview';
  node.textContent = `${(format ?? 'image').toUpperCase()} · no preview`;
  return node;
}

export class Gallery {
  readonly node: HTMLDivElement;

  constructor(store: RecordStore, selection: Set<string>) {
    this._store = store;
    this._selection = selection;
    this._prefix = `cometnb-sb-card-${nextGalleryId++}-`;
    this.node = document.createElement('div');
    this.node.className = 'cometnb-sb-gallery';
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'listbox');
    this.node.setAttribute('aria-multiselectable', 'true');
    this.node.setAttribute('aria-label', 'Generated images, newest first');
    this._spacer = document.createElement('div');
    this._spacer.className = 'cometnb-sb-gallery-spacer';
    this.node.appendChild(this._spacer);
    this.node.addEventListener('scroll', () => this.schedule());
    this.node.addEventListener('keydown', event => this._onKey(event));
    this.node.addEventListener('click', event => this._onClick(event));
    this.node.addEventListener('focus', () => this._showActive());
    this._resize = new ResizeObserver(() => this.schedule());
    this._resize.observe(this.node);
    store.changed.connect(() => this.schedule());
  }

  /** Emitted with the record to open (Enter, click). */
  get opened(): ISignal<this, RecordSummary> {
    return this._opened;
  }

  /** Emitted when the compare selection changed. */
  get selectionChanged(): ISignal<this, void> {
    return this._selectionChanged;
  }

  get columns(): number {
    return this._columns;
  }

  dispose(): void {
    this._resize.disconnect();
  }

  /** Back to the top (a new query). */
  resetScroll(): void {
    this.node.scrollTop = 0;
    this._active = 0;
    this.schedule();
  }

  /** Render on the next animation frame (coalesces scroll and resize bursts). */
  schedule(): void {
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this.render();
      });
    }
  }

  render(): void {
    const width = this.node.clientWidth;
    if (width === 0) {
      return; // hidden: render when shown
    }
    const total = Math.max(0, this._store.total);
    const list = width < LIST_BELOW_WIDTH;
    this.node.classList.toggle('cometnb-sb-mod-list', list);
    this._rowHeight = list ? LIST_ROW_HEIGHT : GRID_ROW_HEIGHT;
    this._columns = list ? 1 : Math.floor(width / MIN_CARD_WIDTH);
    const rows = Math.ceil(total / this._columns);
    this._spacer.style.height = `${rows * this._rowHeight}px`;
    this.node.setAttribute('aria-setsize', String(total));
    const top = this.node.scrollTop;
    const firstRow = Math.max(0, Math.floor(top / this._rowHeight) - OVERSCAN_ROWS);
    const lastRow = Math.min(
      rows - 1,
      Math.ceil((top + this.node.clientHeight) / this._rowHeight) + OVERSCAN_ROWS
    );
    const start = firstRow * this._columns;
    const end = Math.min(total, (lastRow + 1) * this._columns);
    void this._store.ensure(start, end);
    const cardWidth = width / this._columns;
    const keep = new Map<number, HTMLElement>();
    for (let index = start; index < end; index++) {
      const card = this._cards.get(index) ?? this._pool.pop() ?? this._newCard();
      keep.set(index, card);
      this._cards.delete(index);
      card.style.transform = `translate(${(index % this._columns) * cardWidth}px, ${
        Math.floor(index / this._columns) * this._rowHeight
      }px)`;
      card.style.width = `${cardWidth}px`;
      card.style.height = `${this._rowHeight}px`;
      this._fill(card, index, this._store.get(index));
      if (!card.parentElement) {
        this.node.appendChild(card);
      }
    }
    for (const card of this._cards.values()) {
      card.remove();
      this._pool.push(card);
    }
    this._cards = keep;
    this._showActive();
  }

  /** The records [start, end) in view now. */
  visibleRange(): [number, number] {
    const top = this.node.scrollTop;
    const first = Math.floor(top / this._rowHeight) * this._columns;
    const last = Math.ceil((top + this.node.clientHeight) / this._rowHeight) * this._columns;
    return [first, Math.max(first + 1, last)];
  }

  /** The card element for a record index, when it is rendered. */
  cardFor(index: number): HTMLElement | undefined {
    return this._cards.get(index);
  }

  private _newCard(): HTMLElement {
    const card = document.createElement('div');
    card.className = 'cometnb-sb-card';
    card.setAttribute('role', 'option');
    card.innerHTML = `
      <div class="cometnb-sb-card-thumb"></div>
      <div class="cometnb-sb-card-prompt"></div>
      <div class="cometnb-sb-card-meta"></div>
      <div class="cometnb-sb-card-foot"><span class="cometnb-sb-card-cost"></span><span class="cometnb-sb-card-age"></span></div>
      <button type="button" class="cometnb-sb-card-check" tabindex="-1"></button>`;
    return card;
  }

  private _fill(card: HTMLElement, index: number, rec: RecordSummary | undefined): void {
    card.id = this._prefix + index;
    card.dataset.index = String(index);
    card.setAttribute('aria-posinset', String(index + 1));
    const key = rec ? `${rec.id}|${this._selection.has(rec.id)}` : 'loading';
    if (card.dataset.key === key) {
      return; // already shows this record
    }
    card.dataset.key = key;
    const thumb = card.querySelector('.cometnb-sb-card-thumb') as HTMLElement;
    const prompt = card.querySelector('.cometnb-sb-card-prompt') as HTMLElement;
    const meta = card.querySelector('.cometnb-sb-card-meta') as HTMLElement;
    const cost = card.querySelector('.cometnb-sb-card-cost') as HTMLElement;
    const age = card.querySelector('.cometnb-sb-card-age') as HTMLElement;
    const check = card.querySelector('.cometnb-sb-card-check') as HTMLButtonElement;
    card.classList.remove('cometnb-sb-mod-error', 'cometnb-sb-mod-cancelled', 'cometnb-sb-mod-loading');
    thumb.replaceChildren();
    if (!rec) {
      card.classList.add('cometnb-sb-mod-loading');
      delete card.dataset.id;
      card.setAttribute('aria-label', 'loading');
      card.removeAttribute('aria-selected');
      prompt.textContent = '';
      meta.textContent = '';
      cost.textContent = '';
      age.textContent = '';
      check.hidden = true;
      return;
    }
    const selected = this._selection.has(rec.id);
    card.dataset.id = rec.id;
    card.setAttribute('aria-selected', String(selected));
    card.classList.toggle('cometnb-sb-mod-selected', selected);
    check.hidden = false;
    check.setAttribute('aria-pressed', String(selected));
    check.title = selected ? 'Remove from comparison' : 'Select for comparison';
    check.setAttribute('aria-label', check.title);
    if (rec.status === 'ok' && rec.images.length > 0) {
      const img = document.createElement('img');
      img.decoding = 'async';
      img.alt = '';
      img.src = previewUrl(this._store.query.history, rec.id, rec.images[0].index);
      img.addEventListener('error', () => img.replaceWith(noPreview(rec.images[0].format)), {
        once: true
      });
      thumb.appendChild(img);
      if (rec.images.length > 1) {
        const count = document.createElement('span');
        count.className = 'cometnb-sb-card-count';
        count.textContent = `×${rec.images.length}`;
        thumb.appendChild(count);
      }
    } else {
      const failed = rec.status !== 'ok';
      card.classList.add(rec.status === 'cancelled' ? 'cometnb-sb-mod-cancelled' : 'cometnb-sb-mod-error');
      const mark = document.createElement('div');
      mark.className = 'cometnb-sb-card-error';
      const title = document.createElement('strong');
      title.textContent = failed ? (rec.status === 'cancelled' ? '⊘ Cancelled' : '⚠ Failed') : 'No image';
      const reason = document.createElement('span');
      reason.textContent = failed ? errorReason(rec.error, rec.status) : '';
      mark.append(title, reason);
      thumb.appendChild(mark);
    }
    if (rec.parent || rec.kind === 'edit') {
      const badge = document.createElement('span');
      badge.className = 'cometnb-sb-card-badge';
      badge.textContent = 'edit';
      badge.title = rec.parent ? `edit of ${rec.parent}` : 'edit';
      thumb.appendChild(badge);
    }
    prompt.textContent = rec.prompt;
    prompt.title = rec.prompt;
    meta.textContent = settingsLine(rec);
    meta.title = meta.textContent;
    cost.textContent = costText(rec.cost_usd, rec.cost_estimated);
    age.textContent = ageText(rec.created_at);
    const status = rec.status === 'ok' ? '' : `${rec.status}: ${errorReason(rec.error, rec.status)}. `;
    card.setAttribute(
      'aria-label',
      `${status}${rec.prompt.slice(0, 120)}. ${meta.textContent}. ${cost.textContent}, ${age.textContent}`
    );
  }

  private _showActive(): void {
    const total = this._store.total;
    if (total <= 0) {
      this.node.removeAttribute('aria-activedescendant');
      return;
    }
    this._active = Math.min(this._active, total - 1);
    for (const [index, card] of this._cards) {
      card.classList.toggle('cometnb-sb-mod-active', index === this._active);
    }
    if (this._cards.has(this._active)) {
      this.node.setAttribute('aria-activedescendant', this._prefix + this._active);
    }
  }

  private _moveTo(index: number): void {
    const total = this._store.total;
    if (total <= 0) {
      return;
    }
    this._active = Math.max(0, Math.min(total - 1, index));
    const rowTop = Math.floor(this._active / this._columns) * this._rowHeight;
    if (rowTop < this.node.scrollTop) {
      this.node.scrollTop = rowTop;
    } else if (rowTop + this._rowHeight > this.node.scrollTop + this.node.clientHeight) {
      this.node.scrollTop = rowTop + this._rowHeight - this.node.clientHeight;
    }
    this.render();
  }

  private _toggle(rec: RecordSummary): void {
    if (this._selection.has(rec.id)) {
      this._selection.delete(rec.id);
    } else {
      this._selection.add(rec.id);
    }
    this.render();
    this._selectionChanged.emit();
  }

  private _onKey(event: KeyboardEvent): void {
    const pageRows = Math.max(1, Math.floor(this.node.clientHeight / this._rowHeight));
    const moves: Record<string, number> = {
      ArrowLeft: -1,
      ArrowRight: 1,
      ArrowUp: -this._columns,
      ArrowDown: this._columns,
      PageUp: -this._columns * pageRows,
      PageDown: this._columns * pageRows
    };
    if (event.key in moves) {
      this._moveTo(this._active + moves[event.key]);
    } else if (event.key === 'Home') {
      this._moveTo(0);
    } else if (event.key === 'End') {
      this._moveTo(this._store.total - 1);
    } else if (event.key === 'Enter' || event.key === ' ') {
      const rec = this._store.get(this._active);
      if (!rec) {
        return;
      }
      if (event.key === 'Enter') {
        this._opened.emit(rec);
      } else {
        this._toggle(rec);
      }
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  private _onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const card = target.closest('.cometnb-sb-card') as HTMLElement | null;
    if (!card || card.dataset.index === undefined) {
      return;
    }
    const index = Number(card.dataset.index);
    const rec = this._store.get(index);
    if (!rec) {
      return;
    }
    this._active = index;
    this.node.focus({ preventScroll: true });
    if (target.closest('.cometnb-sb-card-check') || event.ctrlKey || event.metaKey) {
      this._toggle(rec);
    } else {
      this._showActive();
      this._opened.emit(rec);
    }
  }

  private _store: RecordStore;
  private _selection: Set<string>;
  private _prefix: string;
  private _spacer: HTMLDivElement;
  private _cards = new Map<number, HTMLElement>();
  private _pool: HTMLElement[] = [];
  private _columns = 1;
  private _rowHeight = LIST_ROW_HEIGHT;
  private _active = 0;
  private _frame = 0;
  private _resize: ResizeObserver;
  private _opened = new Signal<this, RecordSummary>(this);
  private _selectionChanged = new Signal<this, void>(this);
}
