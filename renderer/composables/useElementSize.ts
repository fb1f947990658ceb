// The content size of an element, kept current by a ResizeObserver that is disconnected on unmount.
import { type Ref, onBeforeUnmount, onMounted, ref } from 'vue';

export function useElementSize(target: Ref<HTMLElement | null>): { width: Ref<number>; height: Ref<number> } {
  const width = ref(0);
  const height = ref(0);
  let observer: ResizeObserver | null = null;
  onMounted(() => {
    const el = target.value;
    if (!el) return;
    const read = () => {
      width.value = el.clientWidth;
      height.value = el.clientHeight;
    };
    read();
    observer = new ResizeObserver(read);
    observer.observe(el);
  });
  onBeforeUnmount(() => observer?.disconnect());
  return { width, height };
}
