// The detail view of one record and the side-by-side comparison of several, as DOM built
// with textContent only (prompts are user text; nothing here is parsed as HTML).
import { previewUrl, RecordDetail, RecordSummary, SourceInfo, sourcePreviewUrl } from './api';
import { noPreview } from './gallery';
import { ageText, costText, createdDate, errorFull, settingsLine, valueText } from './format';

export interface DetailActions {
  open(id: string): void;
  insertCell(rec: RecordSummary): void;
  insertEditCell(rec: RecordSummary): void;
  copy(text: string, what: string): void;
  download(rec: RecordSummary, index: number): void;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const node = el('button', 'jp-Button cometnb-sb-action', label);
  node.type = 'button';
  node.title = title;
  node.addEventListener('click', onClick);
  return node;
}

function section(title: string): HTMLElement {
  const node = el('section', 'cometnb-sb-detail-section');
  node.appendChild(el('h3', '', title));
  return node;
}

/** Every request field, model first: a two-column table. */
function settingsTable(rec: RecordDetail): HTMLTableElement {
  const table = el('table', 'cometnb-sb-settings');
  const rows: Array<[string, string]> = [['model', rec.model]];
  for (const [key, value] of Object.entries(rec.params ?? {})) {
    if (key !== 'prompt' && key !== 'model') {
      rows.push([key, valueText(value)]);
    }
  }
  rec.revised_prompts?.forEach((text, i) => {
    if (text) {
      rows.push([`revised prompt ${i + 1}`, text]);
    }
  });
  rows.push(['created', createdDate(rec.created_at).toLocaleString()]);
  if (rec.elapsed_s !== null && rec.elapsed_s !== undefined) {
    rows.push(['took', `${rec.elapsed_s.toFixed(1)} s`]);
  }
  if (rec.origin) {
    rows.push(['from', rec.origin]);
  }
  if (rec.synthetic) {
    rows.push(['synthetic', 'yes (simulator)']);
  }
  rows.push(['id', rec.id]);
  for (const [key, value] of rows) {
    const tr = table.insertRow();
    tr.appendChild(el('th', '', key));
    tr.appendChild(el('td', '', value));
  }
  return table;
}

function thumb(history: string, id: string, index: number, label: string): HTMLImageElement {
  const img = el('img', 'cometnb-sb-thumb');
  img.src = previewUrl(history, id, index);
  img.alt = label;
  img.addEventListener('error', () => img.replaceWith(noPreview(null)), { once: true });
  return img;
}

/** An ancestor (or the record itself) in the lineage strip: a clickable thumbnail. */
function lineageItem(
  history: string,
  item: RecordSummary,
  current: string,
  actions: DetailActions
): HTMLElement {
  const node = el('button', 'cometnb-sb-lineage-item');
  node.type = 'button';
  node.title = item.prompt;
  node.setAttribute('aria-label', `${item.id === current ? 'this record' : 'ancestor'}: ${item.prompt}`);
  if (item.status === 'ok' && item.images.length) {
    node.appendChild(thumb(history, item.id, item.images[0].index, ''));
  } else {
    node.appendChild(el('span', 'cometnb-sb-lineage-missing', '⚠'));
  }
  if (item.id === current) {
    node.classList.add('cometnb-sb-mod-current');
    node.setAttribute('aria-current', 'true');
  } else {
    node.addEventListener('click', () => actions.open(item.id));
  }
  return node;
}

function sourceItem(history: string, owner: string, src: SourceInfo, actions: DetailActions): HTMLElement {
  const node = el('figure', 'cometnb-sb-source');
  const label = `${src.role ?? 'image'}: ${src.label || src.filename || ''}`;
  if (src.available !== false) {
    const img = el('img', 'cometnb-sb-thumb');
    img.src = sourcePreviewUrl(history, owner, src.position);
    img.alt = label;
    node.appendChild(img);
  } else {
    node.appendChild(el('span', 'cometnb-sb-lineage-missing', '▧'));
  }
  if (src.role === 'mask' || src.role === 'markup') {
    // Both are mostly transparent layers over the first image: shown over the checkerboard.
    node.classList.add('cometnb-sb-mod-mask');
  }
  const caption = el('figcaption', '', label);
  caption.title = label;
  node.appendChild(caption);
  const record = src.record;
  if (record) {
    node.tabIndex = 0;
    node.setAttribute('role', 'button');
    node.setAttribute('aria-label', `${label}, from record ${record}: open it`);
    node.addEventListener('click', () => actions.open(record));
    node.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        actions.open(record);
      }
    });
  }
  return node;
}

/** The whole of one record. */
export function renderDetail(
  history: string,
  rec: RecordDetail,
  actions: DetailActions
): HTMLElement {
  const root = el('div', 'cometnb-sb-detail');
  const failed = rec.status !== 'ok';
  if (failed) {
    const box = el('div', 'cometnb-sb-detail-error');
    box.setAttribute('role', 'note');
    box.appendChild(el('strong', '', rec.status === 'cancelled' ? 'Cancelled' : 'Failed'));
    box.appendChild(el('pre', '', errorFull(rec.error_info ?? rec.error) || rec.status));
    root.appendChild(box);
  }
  for (const image of rec.images) {
    const figure = el('figure', 'cometnb-sb-detail-image');
    const label = `image ${image.index + 1} of ${rec.images.length}`;
    const img = thumb(history, rec.id, image.index, `${label}: ${rec.prompt.slice(0, 80)}`);
    if (image.width && image.height) {
      // The stored size reserves the box before the preview arrives (no jump) and gives the
      // width cap that keeps the whole image within 50vh at its own aspect (base.css).
      img.width = image.width;
      img.height = image.height;
      img.style.setProperty('--cometnb-sb-aspect', String(image.width / image.height));
    }
    figure.appendChild(img);
    const dims = image.width && image.height ? `${image.width}×${image.height}` : '';
    figure.appendChild(el('figcaption', '', [dims, image.format ?? ''].filter(Boolean).join(' ')));
    root.appendChild(figure);
  }
  const prompt = el('p', 'cometnb-sb-detail-prompt', rec.prompt);
  root.appendChild(prompt);
  root.appendChild(el('p', 'cometnb-sb-detail-meta', `${settingsLine(rec)} · ${ageText(rec.created_at)}`));

  const bar = el('div', 'cometnb-sb-detail-actions');
  bar.setAttribute('role', 'toolbar');
  bar.setAttribute('aria-label', 'Record actions');
  bar.append(
    button('Insert cell', 'Insert a %%cometimg cell with these settings into the active notebook', () =>
      actions.insertCell(rec)
    ),
    button('Insert edit cell', 'Insert a cell that edits this image (--image @ID)', () =>
      actions.insertEditCell(rec)
    ),
    button('Copy prompt', 'Copy the prompt', () => actions.copy(rec.prompt, 'prompt')),
    button('Copy id', 'Copy the record id', () => actions.copy(rec.id, 'record id'))
  );
  if (!failed && rec.images.length) {
    bar.appendChild(button('Download', 'Download the original image', () => actions.download(rec, 0)));
  } else {
    (bar.children[1] as HTMLButtonElement).disabled = true; // nothing to edit
  }
  root.appendChild(bar);

  const cost = section('Cost');
  cost.appendChild(el('p', 'cometnb-sb-detail-cost', costText(rec.cost_usd, rec.cost_estimated)));
  if (rec.cost_basis) {
    cost.appendChild(el('p', 'cometnb-sb-detail-basis', rec.cost_basis));
  }
  root.appendChild(cost);

  const settings = section('Settings');
  settings.appendChild(settingsTable(rec));
  root.appendChild(settings);

  if (rec.tags.length) {
    const tags = section('Tags');
    const list = el('ul', 'cometnb-sb-tags');
    for (const tag of rec.tags) {
      list.appendChild(el('li', 'cometnb-sb-tag', tag));
    }
    tags.appendChild(list);
    root.appendChild(tags);
  }

  const lineage = rec.lineage ?? [];
  if (lineage.length > 1 || rec.parent) {
    const strip = section('Lineage');
    const list = el('div', 'cometnb-sb-lineage');
    list.setAttribute('aria-label', 'Ancestors, oldest first');
    lineage.forEach((item, i) => {
      if (i > 0) {
        list.appendChild(el('span', 'cometnb-sb-arrow', '→'));
      }
      list.appendChild(lineageItem(history, item, rec.id, actions));
    });
    strip.appendChild(list);
    root.appendChild(strip);
  }

  const sources = rec.sources ?? [];
  if (sources.length) {
    const inputs = section('Edit inputs');
    const list = el('div', 'cometnb-sb-sources');
    for (const src of sources) {
      list.appendChild(sourceItem(history, rec.id, src, actions));
    }
    inputs.appendChild(list);
    root.appendChild(inputs);
  }
  return root;
}

/** Several records side by side; settings that differ between them are marked. */
export function renderCompare(history: string, records: RecordSummary[], actions: DetailActions): HTMLElement {
  const root = el('div', 'cometnb-sb-compare');
  const keys = new Set<string>(['model']);
  for (const rec of records) {
    Object.keys(rec.params ?? {}).forEach(k => k !== 'prompt' && keys.add(k));
  }
  const value = (rec: RecordSummary, key: string): string => {
    const raw = key === 'model' ? rec.model : rec.params?.[key];
    return raw === undefined ? '—' : valueText(raw);
  };
  const differs = (key: string) => new Set(records.map(r => value(r, key))).size > 1;
  for (const rec of records) {
    const column = el('div', 'cometnb-sb-compare-column');
    const open = el('button', 'cometnb-sb-compare-open');
    open.type = 'button';
    open.setAttribute('aria-label', `Open ${rec.prompt.slice(0, 60)}`);
    if (rec.status === 'ok' && rec.images.length) {
      open.appendChild(thumb(history, rec.id, rec.images[0].index, ''));
    } else {
      open.appendChild(el('span', 'cometnb-sb-card-error', `⚠ ${rec.status}`));
    }
    open.addEventListener('click', () => actions.open(rec.id));
    column.appendChild(open);
    column.appendChild(el('p', 'cometnb-sb-compare-prompt', rec.prompt));
    const table = el('table', 'cometnb-sb-settings');
    for (const key of keys) {
      const tr = table.insertRow();
      if (differs(key)) {
        tr.className = 'cometnb-sb-mod-diff';
      }
      tr.appendChild(el('th', '', key));
      tr.appendChild(el('td', '', value(rec, key)));
    }
    const tr = table.insertRow();
    tr.appendChild(el('th', '', 'cost'));
    tr.appendChild(el('td', '', costText(rec.cost_usd, rec.cost_estimated)));
    column.appendChild(table);
    root.appendChild(column);
  }
  return root;
}
