// Pointer gestures on the map, for mouse, pen and touch alike (Pointer Events): a tap or
// click walks there, a drag pans the view, two fingers pinch to zoom, and the mouse
// wheel zooms. The canvas has `touch-action: none`, so the browser leaves these to us.

/** How far (CSS pixels) a pointer may move and still count as a tap. */
export const TAP_SLOP = 8;

/**
 * @typedef {{
 *   tap: (x: number, y: number) => void,
 *   pan: (dx: number, dy: number) => void,
 *   zoom: (factor: number, x: number, y: number) => void,
 *   dragStart?: (x: number, y: number, e: PointerEvent) => boolean,
 *   drag?: (x: number, y: number) => void,
 *   dragEnd?: (x: number, y: number) => void,
 * }} GestureHandlers positions in CSS pixels from the element's top-left corner; a drag
 *   goes to `drag` (from its start to its end) when `dragStart` takes it, else it pans
 */

/** @typedef {{x: number, y: number, startX: number, startY: number}} Pointer */

/** The distance between two pointers and their middle. @param {Pointer} a @param {Pointer} b */
function spread(a, b) {
  return { distance: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
}

export class Gestures {
  /** @param {HTMLElement} element @param {GestureHandlers} on */
  constructor(element, on) {
    this.element = element;
    this.on = on;
    /** Pointers down, by id. @type {Map<number, Pointer>} */
    this.pointers = new Map();
    /** Whether the current gesture moved past a tap (or had two fingers): no walk at the end. */
    this.moved = false;
    /** Whether the current one-finger drag was taken by `dragStart` (build mode's tools). */
    this.dragging = false;
    element.addEventListener('pointerdown', (e) => this.down(e));
    element.addEventListener('pointermove', (e) => this.move(e));
    element.addEventListener('pointerup', (e) => this.up(e, true));
    element.addEventListener('pointercancel', (e) => this.up(e, false));
    element.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
  }

  /** @param {PointerEvent} e */
  at(e) {
    const rect = this.element.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  }

  /** @param {PointerEvent} e */
  down(e) {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    const { x, y } = this.at(e);
    // The first finger of a new gesture: anything left of an earlier one (a lift the
    // browser never reported) is forgotten, or this tap would count as a pinch.
    if (e.isPrimary) this.pointers.clear();
    if (this.pointers.size === 0) this.moved = false;
    this.pointers.set(e.pointerId, { x, y, startX: x, startY: y });
    if (this.pointers.size > 1) {
      // A second finger turns a drag into a pinch: the drag ends where it was.
      if (this.dragging) this.on.dragEnd?.(x, y);
      this.dragging = false;
      this.moved = true;
    }
    this.element.setPointerCapture?.(e.pointerId);
  }

  /** @param {PointerEvent} e */
  move(e) {
    const pointer = this.pointers.get(e.pointerId);
    if (!pointer) return;
    const { x, y } = this.at(e);
    if (this.pointers.size === 2) {
      const other = /** @type {Pointer} */ ([...this.pointers.entries()].find(([id]) => id !== e.pointerId)?.[1]);
      const before = spread(pointer, other);
      pointer.x = x;
      pointer.y = y;
      const after = spread(pointer, other);
      if (before.distance > 0) this.on.zoom(after.distance / before.distance, after.x, after.y);
      this.on.pan((after.x - before.x) / 2, (after.y - before.y) / 2);
      return;
    }
    if (!this.moved && Math.hypot(x - pointer.startX, y - pointer.startY) > TAP_SLOP) {
      this.moved = true;
      this.dragging = Boolean(this.on.dragStart?.(pointer.startX, pointer.startY, e));
    }
    if (this.dragging) this.on.drag?.(x, y);
    else if (this.moved) this.on.pan(x - pointer.x, y - pointer.y);
    pointer.x = x;
    pointer.y = y;
  }

  /** @param {PointerEvent} e @param {boolean} ended */
  up(e, ended) {
    const pointer = this.pointers.get(e.pointerId);
    if (!pointer) return;
    this.pointers.delete(e.pointerId);
    if (this.dragging) {
      this.dragging = false;
      this.on.dragEnd?.(pointer.x, pointer.y);
    } else if (ended && this.pointers.size === 0 && !this.moved) this.on.tap(pointer.x, pointer.y);
  }

  /** @param {WheelEvent} e */
  wheel(e) {
    e.preventDefault();
    const rect = this.element.getBoundingClientRect();
    // One notch (about 100 pixels of scroll) zooms by about 10%.
    this.on.zoom(Math.exp(-e.deltaY / 1000), e.clientX - rect.left, e.clientY - rect.top);
  }
}
