; expect: unresolved_label
    %SpriteDraw(4)
    RTL
