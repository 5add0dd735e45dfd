// The open-addressing index the L1's packed table and its user-id arena share: an Int32Array of
// `slot + 1` values (0 = empty), linear probing over a power-of-two size.

/**
 * Remove `slot` from the index by backward-shift deletion: find its position, then move back
 * every entry that probed past it, so no probe chain is left with a hole (no tombstones).
 * `home` answers an entry's first probe position.
 */
export function unindex(idx: Int32Array, mask: number, slot: number, home: (slot: number) => number): void {
  let i = home(slot);
  while (idx[i] !== slot + 1) i = (i + 1) & mask;
  for (let j = (i + 1) & mask; idx[j] !== 0; j = (j + 1) & mask) {
    const k = home(idx[j] - 1);
    // The entry at j may move to i when its home is not cyclically within (i, j].
    if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
      idx[i] = idx[j];
      i = j;
    }
  }
  idx[i] = 0;
}
