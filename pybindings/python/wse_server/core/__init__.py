"""Pure-Python helpers of the WSE server package (event filters, shared types)."""
