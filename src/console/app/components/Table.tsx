import type { ComponentChildren } from "preact"

export interface Column<Row> {
  readonly header: string
  readonly cell: (row: Row) => ComponentChildren
  /** Right-aligned numbers. */
  readonly numeric?: boolean
}

/** A table with a caption (its accessible name), one row per item, and a line instead when there are none. */
export const Table = <Row,>({ caption, columns, rows, rowKey, empty }: {
  caption: string
  columns: ReadonlyArray<Column<Row>>
  rows: ReadonlyArray<Row>
  rowKey: (row: Row) => string | number
  empty: string
}) =>
  rows.length === 0 ? (
    <p class="muted">{empty}</p>
  ) : (
    <div class="table-wrap">
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th scope="col" class={column.numeric ? "num" : undefined}>
                {column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={rowKey(row)}>
              {columns.map((column) => (
                <td class={column.numeric ? "num" : undefined}>{column.cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
