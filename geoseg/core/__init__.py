"""Core: pure values and rules every layer shares (errors, grid, class table, labels, metrics, bands, options).

Nothing here opens a file or imports torch.
"""
