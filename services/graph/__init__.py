"""Graph service: accounts, OAuth apps and tokens, and who follows whom."""
