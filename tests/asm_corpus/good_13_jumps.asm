; expect: assembles
Dispatch:
    ASL
    TAX
    JMP (.table,x)
.table
    dw .one, .two
.one
    JML [$0000]
.two
    JMP ($0010)
Far:
    JSL $008000
    JML $028000
    JSR Dispatch
    JSR (Dispatch_table,x)
    BRL Far
    RTL
