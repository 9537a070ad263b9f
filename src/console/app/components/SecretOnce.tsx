import { CopyButton } from "./CopyButton.tsx"

/** A secret the router shows this once: in a read-only field labelled `New secret`, to copy now. */
export const SecretOnce = ({ secret, note }: { secret: string; note: string }) => (
  <div class="secret">
    <label for="new-secret">
      New secret
    </label>
    <input id="new-secret" readOnly value={secret} spellcheck={false} onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
    <CopyButton value={secret} what="secret" />
    <p class="muted">{note}</p>
  </div>
)
