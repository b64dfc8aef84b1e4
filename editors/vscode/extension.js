// The Régua extension: colours from the TextMate grammar (syntaxes/, generated from
// dsl/highlight.py), and everything else from the language server, `regua lsp`, started over stdio.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const settings = vscode.workspace.getConfiguration("regua.server");
  const command = settings.get("command", "regua");
  const args = settings.get("args", ["lsp"]);
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "regua",
    "Régua language server",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "regua" }, { scheme: "untitled", language: "regua" }],
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.regua") },
    }
  );
  client.start().catch((error) => {
    vscode.window.showErrorMessage(
      `Régua: could not start \`${command} ${args.join(" ")}\` (${error.message}). ` +
        "Set regua.server.command to the regua of your project, installed with the lsp extra."
    );
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
