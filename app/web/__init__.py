"""HTTP layer: thin routes that call the domain modules, and their templates."""
