// cometnb's front-end plugin: the history sidebar in the left area, the command that opens
// it, and its palette / launcher entries (ids fixed by DESIGN.md §1). The notebook tracker is
// optional so the sidebar also loads on pages without notebooks (Notebook 7's file browser).
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { imageIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { CellInserter, HistorySidebar, MainAreaOpener, SIDEBAR_ID } from './sidebar';

export const OPEN_COMMAND = 'cometnb:open-history';

/** Puts a cell below the active one in the notebook the user last worked in. */
function notebookInserter(app: JupyterFrontEnd, tracker: INotebookTracker): CellInserter {
  return {
    insert(source: string): boolean {
      const panel = tracker.currentWidget;
      if (!panel) {
        return false;
      }
      const notebook = panel.content;
      const active = notebook.activeCell;
      const reuse = active && active.model.type === 'code' && active.model.sharedModel.getSource() === '';
      if (!reuse) {
        NotebookActions.insertBelow(notebook);
      }
      const cell = notebook.activeCell;
      if (!cell) {
        return false;
      }
      cell.model.sharedModel.setSource(source);
      app.shell.activateById(panel.id);
      notebook.mode = 'command';
      void notebook.scrollToItem(notebook.activeCellIndex);
      return true;
    }
  };
}

/** One reusable main-area tab for comparisons (JupyterLab's shell has room for it). */
function mainAreaOpener(app: JupyterFrontEnd): MainAreaOpener {
  let tab: Widget | null = null;
  return (title: string, body: HTMLElement) => {
    if (!tab || tab.isDisposed) {
      tab = new Widget();
      tab.id = 'cometnb-compare';
      tab.addClass('cometnb-sb-main');
      tab.title.icon = imageIcon;
      tab.title.closable = true;
    }
    tab.title.label = title;
    tab.node.replaceChildren(body);
    if (!tab.isAttached) {
      app.shell.add(tab, 'main');
    }
    app.shell.activateById(tab.id);
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'cometnb:history-sidebar',
  description: 'A sidebar that browses cometnb image histories without a kernel.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer, INotebookTracker, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
    tracker: INotebookTracker | null,
    labShell: ILabShell | null
  ) => {
    const sidebar = new HistorySidebar({
      inserter: tracker ? notebookInserter(app, tracker) : null,
      openInMain: labShell ? mainAreaOpener(app) : null,
      reveal: () => app.shell.activateById(SIDEBAR_ID)
    });
    app.shell.add(sidebar, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(sidebar, SIDEBAR_ID);
    }
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Image History',
      caption: 'Browse every image cometnb generated under this server, without a kernel',
      icon: imageIcon,
      execute: () => {
        app.shell.activateById(sidebar.id);
      }
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'cometnb' });
    launcher?.add({ command: OPEN_COMMAND, category: 'Other', rank: 50 });
  }
};

export default plugin;
