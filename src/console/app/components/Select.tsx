/** A labelled select; `options` are [value, text] pairs, the value being what the API takes. */
export const Select = ({ id, label, value, options, onChange }: {
  id: string
  label: string
  value: string
  options: ReadonlyArray<readonly [string, string]>
  onChange: (value: string) => void
}) => (
  <span class="field">
    <label for={id}>{label}</label>
    <select id={id} value={value} onChange={(event) => onChange((event.currentTarget as HTMLSelectElement).value)}>
      {options.map(([optionValue, text]) => (
        <option value={optionValue} selected={optionValue === value}>
          {text}
        </option>
      ))}
    </select>
  </span>
)
