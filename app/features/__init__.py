"""What the app does, a package each: jobs, gallery, grids, people, models, archive, doctor,
ops."""
