"""Export a gallery to one file and import it elsewhere, reading it as hostile."""
