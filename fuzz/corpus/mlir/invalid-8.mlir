lina.grid @g shape = [4] groups = {dp = array<i64: 0, 0>}
