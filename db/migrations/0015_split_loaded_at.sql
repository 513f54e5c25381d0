-- When the splits step stored a split record or changed it, by KapMan's clock (the clock A2 stamps
-- daily_snapshots.ta_computed_at with, so a replayed sandbox day orders the two as the real one).
-- A2 rows of the split's ticker dated on or after its execution date and computed before it was
-- loaded were computed on bars not adjusted for it: they are stale, and A2 recomputes them
-- (kapman.ops.inventory.a2_split_stale).  NULL: stored before KapMan kept the time, counted as
-- known to every stored row.
ALTER TABLE public.splits ADD COLUMN loaded_at timestamptz;
