lina.grid @g shape = [2, 2] groups = {dp = array<i64: 2>}
