"""Push service: accepted notifications in, encrypted web pushes to subscribers' push services out."""
