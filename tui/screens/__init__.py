"""One screen per module; each loads its data in thread workers that only post messages."""
