lina.grid @g shape = [4] groups = {}
