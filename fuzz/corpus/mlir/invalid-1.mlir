lina.grid @g shape = [2, 0] groups = {ep = array<i64: 0>}
