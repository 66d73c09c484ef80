"""The demo workspace (`zelda-tui demo init`): our own deterministic dataset generator (data),
the finished demo run (run), the workspace writer (workspace) and the held-out prompt set
(prompts). Pure files-and-data work, like core: no UI, network or torch."""
