lina.grid @g shape = [4] groups = {ep = array<i01: 0>}
