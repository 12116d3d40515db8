// The history sidebar: search box, filters, history picker, the virtual gallery, and the
// detail / compare views that replace the gallery until "Back". It reads the server
// extension's routes only; it never writes a history.
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { imageIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  EMPTY_QUERY,
  fetchFacets,
  fetchHistories,
  fetchRecord,
  HistoryInfo,
  Query,
  RecordSummary,
  downloadUrl
} from './api';
import { editCell as editSource, generateCell as generateSource } from './cells';
import { DetailActions, renderCompare, renderDetail } from './detail';
import { Gallery } from './gallery';
import { RecordStore } from './store';

export const SIDEBAR_ID = 'cometnb-history-sidebar';
const SEARCH_DELAY_MS = 200;
const POLL_MS = 2500;
const HISTORIES_EVERY = 4; // look for new history folders every 4th poll

/** What the sidebar needs from the notebook side (absent on pages without notebooks). */
export interface CellInserter {
  insert(source: string): boolean;
}

/** Shows a wide view (the comparison) in the main area, where there is room side by side;
 * absent where the shell has one main widget only (Notebook 7): the sidebar shows it then. */
export type MainAreaOpener = (title: string, body: HTMLElement) => void;

/** What the plugin hands the sidebar: each is absent where the page cannot do it. */
export interface SidebarOptions {
  inserter: CellInserter | null;
  openInMain: MainAreaOpener | null;
  /** Bring the sidebar forward (a record opened from the main area). */
  reveal: () => void;
}

let nextFieldId = 0;

function labelled<T extends HTMLElement>(text: string, control: T): HTMLLabelElement {
  const label = document.createElement('label');
  label.className = 'cometnb-sb-field';
  control.id = control.id || `cometnb-sb-field-${nextFieldId++}`;
  label.htmlFor = control.id;
  const span = document.createElement('span');
  span.textContent = text;
  label.append(span, control);
  return label;
}

function input(type: string, className: string, placeholder = ''): HTMLInputElement {
  const node = document.createElement('input');
  node.type = type;
  node.className = `jp-mod-styled ${className}`;
  node.placeholder = placeholder;
  return node;
}

function select(className: string, options: Array<[string, string]>): HTMLSelectElement {
  const node = document.createElement('select');
  node.className = `jp-mod-styled ${className}`;
  setOptions(node, options);
  return node;
}

function setOptions(node: HTMLSelectElement, options: Array<[string, string]>): void {
  const current = node.value;
  node.replaceChildren(
    ...options.map(([value, text]) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = text;
      return option;
    })
  );
  node.value = options.some(([value]) => value === current) ? current : options[0]?.[0] ?? '';
}

function button(text: string, className: string, title: string): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = `jp-Button ${className}`;
  node.textContent = text;
  node.title = title;
  return node;
}

export class HistorySidebar extends Widget {
  constructor(options: SidebarOptions) {
    super();
    this._openInMain = options.openInMain;
    this._reveal = options.reveal;
    this.id = SIDEBAR_ID;
    this.addClass('cometnb-sb-sidebar');
    this.title.icon = imageIcon;
    this.title.caption = 'Image history (cometnb)';
    this._inserter = options.inserter;
    this._gallery = new Gallery(this._store, this._selection);
    this._build();
    this._store.changed.connect(() => this._showStatus());
    this._store.failed.connect((_, reason) => this._showStatus(reason));
    this._gallery.opened.connect((_, rec) => void this.openRecord(rec.id));
    this._gallery.selectionChanged.connect(() => this._showSelection());
  }

  get store(): RecordStore {
    return this._store;
  }

  dispose(): void {
    window.clearInterval(this._timer);
    window.clearTimeout(this._debounce);
    this._gallery.dispose();
    super.dispose();
  }

  /** Show one record in the detail view. */
  async openRecord(id: string): Promise<void> {
    const history = this._store.query.history;
    this._reveal();
    this._showView('Loading…');
    try {
      const rec = await fetchRecord(history, id);
      this._showView(rec.prompt, renderDetail(history, rec, this._actions));
    } catch (error) {
      this._showView('Not found', this._message(`Could not open ${id}: ${String(error)}`));
    }
  }

  // Nothing is fetched until the sidebar is first shown: a Lab page whose user never opens
  // it costs the server nothing.
  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._start();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._start()) {
      this._gallery.schedule();
      void this._poll(); // catch up at once with what happened while hidden
    }
  }

  /** The first showing: list the histories, open the first, start polling. */
  private _start(): boolean {
    if (this._started) {
      return false;
    }
    this._started = true;
    void this._loadHistories();
    this._timer = window.setInterval(() => void this._poll(), POLL_MS);
    return true;
  }

  private _build(): void {
    const header = document.createElement('div');
    header.className = 'cometnb-sb-header';
    const title = document.createElement('h2');
    title.textContent = 'Image history';
    this._picker.setAttribute('aria-label', 'History folder');
    this._pickerLabel.hidden = true;
    header.append(title, this._pickerLabel);

    this._search.setAttribute('aria-label', 'Search prompts');
    this._search.addEventListener('input', () => this._queryChanged());
    this._search.addEventListener('keydown', event => {
      if (event.key === 'ArrowDown') {
        event.preventDefault();
        this._gallery.node.focus();
      }
    });
    for (const control of [this._model, this._tag, this._status, this._since, this._until]) {
      control.addEventListener('change', () => this._queryChanged(0));
    }
    for (const control of [this._minCost, this._maxCost]) {
      control.addEventListener('input', () => this._queryChanged());
    }
    this._minCost.min = this._maxCost.min = '0';
    this._minCost.step = this._maxCost.step = '0.01';
    this._picker.addEventListener('change', () => void this._historyChanged());
    const clear = button('Clear filters', 'cometnb-sb-clear', 'Show every record again');
    clear.addEventListener('click', () => this._clearFilters());

    const filters = document.createElement('details');
    filters.className = 'cometnb-sb-filters';
    const summary = document.createElement('summary');
    summary.textContent = 'Filters';
    const grid = document.createElement('div');
    grid.className = 'cometnb-sb-filter-grid';
    grid.append(
      labelled('Model', this._model),
      labelled('Tag', this._tag),
      labelled('Status', this._status),
      labelled('From', this._since),
      labelled('To', this._until),
      labelled('Min $', this._minCost),
      labelled('Max $', this._maxCost),
      clear
    );
    filters.append(summary, grid);

    this._statusLine.className = 'cometnb-sb-status';
    this._statusLine.setAttribute('role', 'status');
    this._statusLine.setAttribute('aria-live', 'polite');

    const compare = button('Compare', 'jp-mod-accept cometnb-sb-compare-button', 'Compare side by side');
    compare.addEventListener('click', () => this._compare());
    const unselect = button('Clear', 'cometnb-sb-unselect', 'Clear the selection');
    unselect.addEventListener('click', () => {
      this._selection.clear();
      this._gallery.render();
      this._showSelection();
    });
    this._selectionBar.className = 'cometnb-sb-selection-bar';
    this._selectionBar.hidden = true;
    this._selectionBar.append(this._selectionText, compare, unselect);

    const galleryView = document.createElement('div');
    galleryView.className = 'cometnb-sb-gallery-view';
    galleryView.append(this._search, filters, this._statusLine, this._gallery.node, this._selectionBar);
    this._galleryView = galleryView;

    const back = button('← Back', 'cometnb-sb-back', 'Back to the gallery (Escape)');
    back.addEventListener('click', () => this._back());
    const bar = document.createElement('div');
    bar.className = 'cometnb-sb-view-bar';
    this._viewTitle.className = 'cometnb-sb-view-title';
    bar.append(back, this._viewTitle);
    this._view.className = 'cometnb-sb-record-view';
    this._view.hidden = true;
    this._view.append(bar, this._viewBody);
    this._viewBody.className = 'cometnb-sb-view-body';
    this._view.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        event.preventDefault();
        this._back();
      }
    });
    this.node.append(header, galleryView, this._view);
  }

  private get _actions(): DetailActions {
    return {
      open: id => void this.openRecord(id),
      insertCell: rec => this._insert(generateSource(rec)),
      insertEditCell: rec => this._insert(editSource(rec)),
      copy: (text, what) => {
        Clipboard.copyToSystem(text);
        Notification.info(`Copied the ${what}`, { autoClose: 2000 });
      },
      download: (rec, index) => this._download(rec, index)
    };
  }

  private _insert(source: string): void {
    if (!this._inserter || !this._inserter.insert(source)) {
      Notification.warning('Open a notebook first: the cell goes into the active notebook.', {
        autoClose: 4000
      });
    }
  }

  private _download(rec: RecordSummary, index: number): void {
    const link = document.createElement('a');
    link.href = downloadUrl(this._store.query.history, rec.id, index);
    link.download = '';
    link.rel = 'noopener';
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  private _currentQuery(): Query {
    return {
      ...EMPTY_QUERY,
      history: this._picker.value,
      q: this._search.value,
      model: this._model.value,
      tag: this._tag.value,
      status: this._status.value,
      since: this._since.value,
      until: this._until.value,
      minCost: this._minCost.value,
      maxCost: this._maxCost.value
    };
  }

  /** Typing waits for a pause; a select applies at once. */
  private _queryChanged(delay = SEARCH_DELAY_MS): void {
    window.clearTimeout(this._debounce);
    this._debounce = window.setTimeout(() => {
      this._gallery.resetScroll();
      void this._store.setQuery(this._currentQuery());
    }, delay);
    this._statusLine.textContent = 'Searching…';
  }

  private _clearFilters(): void {
    for (const control of [this._model, this._tag, this._status]) {
      control.value = '';
    }
    for (const control of [this._since, this._until, this._minCost, this._maxCost]) {
      control.value = '';
    }
    this._queryChanged(0);
  }

  private async _loadHistories(): Promise<void> {
    let histories: HistoryInfo[];
    try {
      histories = (await fetchHistories()).histories;
    } catch (error) {
      this._showStatus(`Could not list histories: ${String(error)}`);
      return;
    }
    const key = histories.map(h => h.id).join('|');
    if (key === this._historiesKey) {
      return;
    }
    this._historiesKey = key;
    setOptions(
      this._picker,
      histories.map(h => [h.id, `${h.path} (${h.records.toLocaleString()})`])
    );
    this._pickerLabel.hidden = histories.length < 2;
    if (!histories.length) {
      this._statusLine.textContent =
        'No history found under the server root. Generate an image with %%cometimg first.';
      return;
    }
    if (this._picker.value !== this._store.query.history) {
      await this._historyChanged();
    }
  }

  private async _historyChanged(): Promise<void> {
    this._selection.clear();
    this._showSelection();
    this._gallery.resetScroll();
    await this._store.setQuery(this._currentQuery());
    await this._loadFacets();
  }

  /** The model and tag filters offer what the history holds, with counts. */
  private async _loadFacets(): Promise<void> {
    try {
      const facets = await fetchFacets(this._store.query.history);
      const choices = (items: Array<{ value: string; count: number }>): Array<[string, string]> => [
        ['', 'any'],
        ...items.map(i => [i.value, `${i.value} (${i.count})`] as [string, string])
      ];
      setOptions(this._model, choices(facets.models));
      setOptions(this._tag, choices(facets.tags));
    } catch {
      // no facets: the filters keep what they offered
    }
  }

  /** Live updates: while visible, ask for the newest record; reload only when it changed. */
  private async _poll(): Promise<void> {
    if (!this.isVisible || document.hidden || this._polling) {
      return;
    }
    this._polling = true;
    try {
      this._ticks += 1;
      if (this._ticks % HISTORIES_EVERY === 0 || !this._store.query.history) {
        await this._loadHistories();
      }
      if (await this._store.probe()) {
        await this._store.refresh(...this._gallery.visibleRange());
        void this._loadFacets();
      }
    } catch {
      // the server may be restarting; the next tick tries again
    } finally {
      this._polling = false;
    }
  }

  private _showStatus(reason?: string): void {
    const total = this._store.total;
    if (reason) {
      this._statusLine.textContent = reason;
      this._statusLine.classList.add('cometnb-sb-mod-problem');
      return;
    }
    this._statusLine.classList.remove('cometnb-sb-mod-problem');
    if (total < 0) {
      this._statusLine.textContent = 'Loading…';
    } else if (total === 0) {
      const q = this._store.query;
      const filtered = q.q || q.model || q.tag || q.status || q.since || q.until || q.minCost || q.maxCost;
      this._statusLine.textContent = filtered ? 'No record matches.' : 'This history is empty.';
    } else {
      this._statusLine.textContent = `${total.toLocaleString()} record${total === 1 ? '' : 's'}`;
    }
  }

  private _showSelection(): void {
    const count = this._selection.size;
    this._selectionBar.hidden = count === 0;
    this._selectionText.textContent = `${count} selected`;
    const compare = this._selectionBar.querySelector('.cometnb-sb-compare-button') as HTMLButtonElement;
    compare.disabled = count < 2;
  }

  private async _compare(): Promise<void> {
    const history = this._store.query.history;
    const records: RecordSummary[] = [];
    for (const id of this._selection) {
      records.push(this._store.find(id) ?? (await fetchRecord(history, id)));
    }
    const title = `Comparing ${records.length}`;
    const body = renderCompare(history, records, this._actions);
    if (this._openInMain) {
      this._openInMain(title, body);
    } else {
      this._showView(title, body);
    }
  }

  private _showView(title: string, body?: HTMLElement): void {
    this._galleryView.hidden = true;
    this._view.hidden = false;
    this._viewTitle.textContent = title;
    this._viewTitle.title = title;
    this._viewBody.replaceChildren(...(body ? [body] : []));
    this._viewBody.scrollTop = 0;
    (this._view.querySelector('.cometnb-sb-back') as HTMLElement).focus();
  }

  private _message(text: string): HTMLElement {
    const p = document.createElement('p');
    p.className = 'cometnb-sb-status cometnb-sb-mod-problem';
    p.textContent = text;
    return p;
  }

  private _back(): void {
    this._view.hidden = true;
    this._galleryView.hidden = false;
    this._gallery.schedule();
    this._gallery.node.focus();
  }

  private _inserter: CellInserter | null;
  private _openInMain: MainAreaOpener | null;
  private _reveal: () => void;
  private _store = new RecordStore();
  private _selection = new Set<string>();
  private _gallery: Gallery;
  private _galleryView!: HTMLDivElement;
  private _picker = select('cometnb-sb-history-picker', []);
  private _pickerLabel = labelled('History', this._picker);
  private _search = input('search', 'cometnb-sb-search', 'Search prompts…');
  private _model = select('cometnb-sb-filter-model', [['', 'any']]);
  private _tag = select('cometnb-sb-filter-tag', [['', 'any']]);
  private _status = select('cometnb-sb-filter-status', [
    ['', 'any'],
    ['ok', 'ok'],
    ['error', 'failed'],
    ['cancelled', 'cancelled']
  ]);
  private _since = input('date', 'cometnb-sb-filter-since');
  private _until = input('date', 'cometnb-sb-filter-until');
  private _minCost = input('number', 'cometnb-sb-filter-min-cost', '0.00');
  private _maxCost = input('number', 'cometnb-sb-filter-max-cost', 'any');
  private _statusLine = document.createElement('div');
  private _selectionBar = document.createElement('div');
  private _selectionText = document.createElement('span');
  private _view = document.createElement('div');
  private _viewTitle = document.createElement('span');
  private _viewBody = document.createElement('div');
  private _historiesKey: string | null = null; // null: not listed yet
  private _started = false;
  private _polling = false;
  private _ticks = 0;
  private _timer = 0;
  private _debounce = 0;
}
